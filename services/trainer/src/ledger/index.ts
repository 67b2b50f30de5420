/** The trainer's own record of what it signed, and the repairs it makes from it (docs/architecture.md, "Trust and signing"). */
export { type LedgerEntry, LedgerFiles } from "./ledger-files.ts";
export { RunLedger, type RunLedgerDeps } from "./run-ledger.ts";
