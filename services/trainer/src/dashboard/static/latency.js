// How a generator came to activate a version, for the fleet panel's publish → active latency.
// Pure (no DOM): services/trainer/src/dashboard/static/latency.test.ts runs it under Node.

/**
 * How version `row` (a generator's `GET /v1/adapters` row, shared/generator-api/adapters.ts) became
 * active on a generator that started at `startedAt`:
 * - `{ kind: "handoff", ms }`: published while the generator ran, activated `ms` milliseconds after
 *   its manifest's createdAt (trainer and generator clocks);
 * - `{ kind: "start-up" }`: published before the generator started, so it was activated at start-up
 *   and `activatedAt - createdAt` would be the generator's downtime, not a handoff;
 * - `{ kind: "rollback" }`: activated again by a rollback, long after its publish;
 * - null: not activated, or its publish time is not known.
 * @param {{activatedAt: number|null, trigger: string}} row
 * @param {number|undefined} published the version's createdAt, epoch ms
 * @param {number|null} startedAt when the generator started, epoch ms (null: not reported)
 * @returns {{kind: "handoff", ms: number} | {kind: "start-up"} | {kind: "rollback"} | null}
 */
export function activation(row, published, startedAt) {
  if (row.activatedAt === null || published === undefined) return null;
  if (startedAt !== null && published < startedAt) return { kind: "start-up" };
  if (row.trigger === "rollback") return { kind: "rollback" };
  return { kind: "handoff", ms: Math.max(0, row.activatedAt - published) };
}
