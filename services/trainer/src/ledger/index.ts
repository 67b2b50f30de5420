/** The trainer's own record of what it signed, and the repairs it makes from it (docs/architecture.md, "Trust and signing"). */
export { RunLedger } from "./run-ledger.ts";
