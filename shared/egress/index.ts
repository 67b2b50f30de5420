/** Outbound traffic and what the services show of it: the egress policy and credential redaction. */
export { EgressRefused, egressFetch } from "./fetch.ts";
export { checkEgressUrl, type EgressPolicy } from "./policy.ts";
export { redactSecrets, redactText, redactUrl } from "./redact.ts";
