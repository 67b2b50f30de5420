/** The trainer's fleet view: each webhook subscriber's adapter state, asked over its public API. */
export { FLEET_DEFAULTS, type FleetDeps, readFleet } from "./fleet-view.ts";
