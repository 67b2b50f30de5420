/** Outbound traffic and what the services show of it: the egress policy and credential redaction. */
export { EgressRefused, egressFetch } from "./fetch.ts";
export { checkEgressUrl, type EgressPolicy, refuseAddress } from "./policy.ts";
export { REDACTED, redactSecrets, redactText, redactUrl } from "./redact.ts";
