import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { before, describe, it } from "node:test";
import {
  check,
  type K8sObject,
  KUSTOMIZATIONS,
  kustomizationDir,
  referenceFindings,
  render,
  schemaFindings,
  unknownFieldFindings,
} from "./manifests.ts";

const renders = new Map<string, K8sObject[]>();
before(() => {
  for (const k of KUSTOMIZATIONS) renders.set(k, render(kustomizationDir(k)));
});

const rendered = (k: (typeof KUSTOMIZATIONS)[number]): K8sObject[] => renders.get(k) ?? [];
const find = (objects: K8sObject[], apiVersion: string, kind: string, name: string): K8sObject => {
  const o = objects.find((x) => x.apiVersion === apiVersion && x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${apiVersion} ${kind}/${name} is in the render`);
  return o;
};
const copy = <T>(o: T): T => structuredClone(o);

type Container = {
  env: { name: string; value?: string; valueFrom?: { secretKeyRef?: { key: string } } }[];
  readinessProbe?: { httpGet: { path: string } };
  resources: { requests: Record<string, unknown>; limits: Record<string, unknown> };
  securityContext: { readOnlyRootFilesystem: boolean; capabilities: { drop: string[] } };
  volumeMounts: { name: string; mountPath: string }[];
};
type Workload = K8sObject & {
  spec: {
    replicas?: unknown;
    template: { spec: { containers: Container[]; securityContext: { runAsNonRoot: boolean } } };
  };
};
const container = (o: K8sObject): Container => (o as Workload).spec.template.spec.containers[0] as Container;

describe("Kubernetes manifests (infra/k8s)", () => {
  it("render, and every object passes its schema, has no unknown field and refers to what exists", async () => {
    assert.deepEqual(await check([...renders.values()]), []);
    const kinds = (k: (typeof KUSTOMIZATIONS)[number]) => rendered(k).map((o) => `${o.apiVersion} ${o.kind}`);
    assert.ok(kinds("overlays/hpa").includes("autoscaling/v2 HorizontalPodAutoscaler"));
    assert.ok(kinds("overlays/keda").includes("keda.sh/v1alpha1 ScaledObject"));
    assert.ok(kinds("overlays/knative").includes("serving.knative.dev/v1 Service"));
    assert.equal(
      rendered("overlays/knative").filter((o) => o.metadata.name === "loracast-generator").length,
      1,
      "the Knative Service replaces the generator's Deployment, Service and PDB",
    );
    for (const k of ["overlays/hpa", "overlays/keda"] as const) {
      const g = find(rendered(k), "apps/v1", "Deployment", "loracast-generator") as Workload;
      assert.equal(g.spec.replicas, undefined, `${k}: the autoscaler owns the replica count`);
    }
  });

  it("name every image with its registry and tag (the images transformer reached each one)", () => {
    for (const k of KUSTOMIZATIONS) {
      const images = JSON.stringify(rendered(k)).match(/"image":"[^"]*"/g) ?? [];
      assert.ok(images.length >= 3, `${k}: ${images.length} images`);
      for (const image of images) assert.match(image, /"image":"localhost\/loracast-[a-z]+:[a-z-]+"/, k);
    }
  });

  it("run generators on a GPU, ready on /readyz, non-root with a read-only root filesystem", () => {
    const base = rendered("base");
    const knative = find(
      rendered("overlays/knative"),
      "serving.knative.dev/v1",
      "Service",
      "loracast-generator",
    );
    for (const o of [find(base, "apps/v1", "Deployment", "loracast-generator"), knative]) {
      const c = container(o);
      assert.equal(c.resources.limits["nvidia.com/gpu"], 1);
      assert.equal(c.readinessProbe?.httpGet.path, "/readyz");
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
      assert.equal((o as Workload).spec.template.spec.securityContext.runAsNonRoot, true);
    }
    find(base, "policy/v1", "PodDisruptionBudget", "loracast-generator");
  });

  it("fan the trainer's webhooks out over a headless Service of the generators, on their port", () => {
    for (const k of KUSTOMIZATIONS) {
      const objects = rendered(k);
      const trainer = container(find(objects, "apps/v1", "Deployment", "loracast-trainer"));
      const subscribers = trainer.env.find((e) => e.name === "WEBHOOK_SUBSCRIBERS")?.value ?? "";
      const url = new URL(subscribers.replace(/^dns\+/, ""));
      assert.ok(subscribers.startsWith("dns+http://"), subscribers);
      const peers = find(objects, "v1", "Service", url.hostname) as K8sObject & {
        spec: { clusterIP: string; ports: { port: number }[] };
      };
      assert.equal(peers.spec.clusterIP, "None", `${k}: ${url.hostname} is headless`);
      assert.equal(peers.spec.ports[0]?.port, Number(url.port));
      assert.deepEqual(referenceFindings(objects), [], `${k}: its selector matches the generators`);
      const data = trainer.volumeMounts.find((m) => m.name === "data")?.mountPath;
      assert.equal(
        trainer.env.find((e) => e.name === "TRAINER_DATA_DIR")?.value,
        data,
        "the outbox is on the volume",
      );
    }
  });

  it("catch a misspelt field, a wrong type, a missing key, a stray selector, a misnamed port and an unknown kind", async () => {
    const base = rendered("base");
    const generator = find(base, "apps/v1", "Deployment", "loracast-generator");
    const named = (o: K8sObject, name: string): K8sObject => ({
      ...copy(o),
      metadata: { ...o.metadata, name },
    });

    const typo = named(generator, "typo") as Workload;
    const c = typo.spec.template.spec.containers[0] as Container & Record<string, unknown>;
    c.readynessProbe = c.readinessProbe;
    delete c.readinessProbe;
    const wrongType = named(generator, "wrong-type") as Workload;
    wrongType.spec.replicas = "two";
    const missingKey = named(generator, "missing-key") as Workload;
    const ref = container(missingKey).env.find((e) => e.valueFrom?.secretKeyRef !== undefined);
    if (ref?.valueFrom?.secretKeyRef !== undefined) ref.valueFrom.secretKeyRef.key = "webhook-secrte";
    const service = named(find(base, "v1", "Service", "loracast-generator-peers"), "stray") as K8sObject & {
      spec: { selector: Record<string, string> };
    };
    service.spec.selector = { "app.kubernetes.io/name": "loracast-generatr" };
    const badPort = named(find(base, "v1", "Service", "loracast-generator"), "bad-port") as K8sObject & {
      spec: { ports: { targetPort: string }[] };
    };
    (badPort.spec.ports[0] as { targetPort: string }).targetPort = "htp";
    const widget = { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } };
    const scaled = named(
      find(rendered("overlays/keda"), "keda.sh/v1alpha1", "ScaledObject", "loracast-generator"),
      "keda-typo",
    );
    (scaled.spec as { triggers: Record<string, unknown>[] }).triggers[0] = {
      type: "prometheus",
      metdata: {},
    };

    const homeless = named(
      find(rendered("overlays/hpa"), "autoscaling/v2", "HorizontalPodAutoscaler", "loracast-generator"),
      "homeless",
    );
    delete homeless.metadata.namespace;

    const objects = [...base, typo, wrongType, missingKey, service, badPort, widget, scaled, homeless];
    const found = [
      ...(await schemaFindings(objects)),
      ...unknownFieldFindings(objects),
      ...referenceFindings(objects),
    ];
    const at = (where: string) =>
      found
        .filter((f) => f.where === where)
        .map((f) => f.message)
        .join("\n");
    assert.match(at("Deployment/typo"), /'"readynessProbe"' does not exist in type/);
    assert.match(at("Deployment/wrong-type"), /spec\/replicas must be integer/);
    assert.match(at("Deployment/missing-key"), /Secret loracast-secrets has no key webhook-secrte/);
    assert.match(at("Service/stray"), /matches no pod template/);
    assert.match(at("Service/bad-port"), /targetPort htp is not a port name of the pods it selects/);
    assert.match(at("Widget/w"), /no schema for example\.com\/v1 Widget/);
    assert.match(at("ScaledObject/keda-typo"), /must have required property metadata/);
    assert.match(at("ScaledObject/keda-typo"), /'"metdata"' does not exist in type/);
    assert.match(at("HorizontalPodAutoscaler/homeless"), /not in the namespace loracast \(it has none\)/);
    // Nothing else: the unbroken objects still pass.
    const broken = new Set([
      "typo",
      "wrong-type",
      "missing-key",
      "stray",
      "bad-port",
      "w",
      "keda-typo",
      "homeless",
    ]);
    assert.deepEqual(
      found.filter((f) => !broken.has(f.where.split("/")[1] ?? "")),
      [],
    );
  });

  it("fail with kustomize's reason when an overlay does not render", () => {
    const dir = mkdtempSync(join(tmpdir(), "k8s-overlay-"));
    try {
      const base = relative(dir, kustomizationDir("base"));
      writeFileSync(join(dir, "kustomization.yaml"), `resources:\n  - ${base}\n  - missing.yaml\n`);
      assert.throws(() => render(dir), /(kubectl kustomize|kustomize build) .* failed: .*missing\.yaml/s);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
