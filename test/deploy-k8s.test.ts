/**
 * Renders each overlay under k8s/overlays with `kubectl kustomize` and checks
 * what comes out:
 * - every object against the Kubernetes 1.33 API schemas shipped by the
 *   kubernetes-models package (types, enums, required fields), and against
 *   its TypeScript declarations for unknown fields, which the JSON schemas
 *   allow but `kubectl apply` would drop or reject;
 * - cross-references: the ConfigMaps, Secrets, keys, ServiceAccounts and
 *   claims that workloads name exist, and Service and probe ports name
 *   container ports. The ext_authz address in the Envoy bootstrap is the
 *   Service or loopback address the service listens on, and the
 *   NetworkPolicies select the right pods;
 * - the hardening every container must have, and that the service
 *   configuration in each overlay passes parseConfig with its secret files
 *   read from the Secrets mounted at those paths.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import yaml from 'js-yaml';
import ts from 'typescript';
import { parseConfig } from '../src/config/load.js';

const REPO_ROOT = findRepoRoot();
const OVERLAYS_DIR = join(REPO_ROOT, 'k8s/overlays');
const SERVICE_CONTAINER = 'hawkbit-ext-authz';
const SERVICE_CONFIG_PATH = '/etc/hawkbit-ext-authz/config.yaml';
const ENVOY_CONTAINER = 'envoy';
const EXT_AUTHZ_CLUSTER = 'hawkbit_ext_authz';
/** The Envoy bootstrap each overlay must carry unchanged, from envoy/. */
const ENVOY_SOURCES: Record<string, string> = { sidecar: 'envoy.yaml', shared: 'envoy-shared.yaml' };

const KUBECTL_MISSING = [
  'kubectl was not found on PATH. These tests render k8s/overlays with `kubectl kustomize` (kustomize v5, kubectl 1.27 or later).',
  'Install kubectl from the Kubernetes package repository (apt package "kubectl"), or put a standalone `kustomize` v5 binary on PATH.',
  'Debian 12\'s "kubernetes-client" package is kubectl 1.20 with kustomize v2.0.3, which cannot read these kustomizations.',
].join(' ');

type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
};
type Json = Record<string, unknown>;

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/** Runs kustomize on an overlay directory; throws with the tool's output when it fails. */
function renderOverlay(directory: string): K8sObject[] {
  const kubectl = spawnSync('kubectl', ['kustomize', directory], { encoding: 'utf8', timeout: 60_000 });
  let result = kubectl;
  if ((kubectl.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    result = spawnSync('kustomize', ['build', directory], { encoding: 'utf8', timeout: 60_000 });
    if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      throw new Error(KUBECTL_MISSING);
    }
  }
  if (result.error) {
    throw result.error;
  }
  if (result.status !== 0) {
    throw new Error(`kustomize failed for ${directory} (exit ${result.status}): ${result.stderr}\nkustomize v5 is needed: ${KUBECTL_MISSING}`);
  }
  return yaml.loadAll(result.stdout).filter((document): document is K8sObject => isRecord(document));
}

// ---------------------------------------------------------------------------
// Schema validation
// ---------------------------------------------------------------------------

const requireModel = createRequire(import.meta.url);

/** kubernetes-models module path of an apiVersion and kind: `apps/v1/Deployment`, `v1/Service`. */
function modelPath(object: K8sObject): string {
  return `kubernetes-models/${object.apiVersion}/${object.kind}`;
}

/** Validates one object against its JSON schema; returns the problems. */
function schemaProblems(object: K8sObject): string[] {
  let module: Record<string, unknown>;
  try {
    module = requireModel(modelPath(object)) as Record<string, unknown>;
  } catch {
    return [`no schema for ${object.apiVersion} ${object.kind} in kubernetes-models`];
  }
  const Model = module[object.kind] as new (data: unknown) => { validate(): void };
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    const details = (error as { errors?: Array<{ instancePath: string; message?: string }> }).errors;
    if (details) {
      return details.map((detail) => `${detail.instancePath || '/'} ${detail.message ?? ''}`.trim());
    }
    return [String(error)];
  }
}

/**
 * Type-checks objects against kubernetes-models' declarations, which list
 * every field of every type. TypeScript's excess-property check on object
 * literals then reports unknown or misspelt fields at any depth.
 */
function unknownFieldProblems(objects: K8sObject[]): string[] {
  const fileName = join(REPO_ROOT, '.tmp', 'k8s-field-check.ts').replace(/\\/g, '/');
  const lines: string[] = [];
  const ranges: Array<{ start: number; end: number; label: string }> = [];
  let offset = 0;
  objects.forEach((object, index) => {
    const typeName = `I${object.kind}`;
    const statement = `import type { ${typeName} as T${index} } from '${modelPath(object)}';\nexport const o${index}: T${index} = ${JSON.stringify(object, null, 1)};\n`;
    ranges.push({ start: offset, end: offset + statement.length, label: `${object.kind}/${object.metadata.name}` });
    lines.push(statement);
    offset += statement.length;
  });
  const source = lines.join('');

  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (name) => (name === fileName ? source : readFile(name));
  host.fileExists = (name) => name === fileName || fileExists(name);
  host.getSourceFile = (name, languageVersion, onError, shouldCreate) =>
    name === fileName ? ts.createSourceFile(name, source, languageVersion, true) : getSourceFile(name, languageVersion, onError, shouldCreate);

  const program = ts.createProgram([fileName], options, host);
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
    const label = ranges.find((range) => diagnostic.start !== undefined && diagnostic.start >= range.start && diagnostic.start < range.end)?.label ?? 'unknown object';
    return `${label}: ${text}`;
  });
}

// ---------------------------------------------------------------------------
// Object helpers
// ---------------------------------------------------------------------------

interface Workload {
  object: K8sObject;
  podLabels: Record<string, string>;
  podSpec: Json;
  claimTemplates: string[];
}

function workloads(objects: K8sObject[]): Workload[] {
  return objects
    .filter((object) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(object.kind))
    .map((object) => ({
      object,
      podLabels: (get(object, 'spec', 'template', 'metadata', 'labels') ?? {}) as Record<string, string>,
      podSpec: get(object, 'spec', 'template', 'spec') as Json,
      claimTemplates: asList(get(object, 'spec', 'volumeClaimTemplates')).map((claim) => String(get(claim, 'metadata', 'name'))),
    }));
}

function containersOf(podSpec: Json): Json[] {
  return [...asList(podSpec.initContainers), ...asList(podSpec.containers)];
}

function findObject(objects: K8sObject[], kind: string, name: string): K8sObject | undefined {
  return objects.find((object) => object.kind === kind && object.metadata.name === name);
}

function dataKeys(object: K8sObject): string[] {
  return [...Object.keys((object.data ?? {}) as Json), ...Object.keys((object.stringData ?? {}) as Json), ...Object.keys((object.binaryData ?? {}) as Json)];
}

/** Returns the text of a ConfigMap or Secret key, decoding Secret `data` from base64. */
function dataValue(object: K8sObject, key: string): string | undefined {
  const stringData = (object.stringData ?? {}) as Record<string, string>;
  const data = (object.data ?? {}) as Record<string, string>;
  if (key in stringData) {
    return stringData[key];
  }
  if (key in data) {
    return object.kind === 'Secret' ? Buffer.from(data[key], 'base64').toString('utf8') : data[key];
  }
  return undefined;
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector || Object.keys(selector).length === 0) {
    return false;
  }
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/** A ConfigMap or Secret key that is mounted as a file in a container. */
interface MountedFile {
  kind: 'ConfigMap' | 'Secret';
  name: string;
  key: string;
}

/** Maps each file path mounted in a container from ConfigMap, Secret and projected volumes to its source key. */
function mountedFiles(podSpec: Json, container: Json, objects: K8sObject[]): Map<string, MountedFile> {
  const files = new Map<string, MountedFile>();
  const volumes = new Map(asList(podSpec.volumes).map((volume) => [String(volume.name), volume]));
  for (const mount of asList(container.volumeMounts)) {
    const volume = volumes.get(String(mount.name));
    if (!volume) {
      continue;
    }
    const sources: Array<{ kind: 'ConfigMap' | 'Secret'; spec: Json }> = [];
    if (isRecord(volume.configMap)) {
      sources.push({ kind: 'ConfigMap', spec: volume.configMap });
    }
    if (isRecord(volume.secret)) {
      sources.push({ kind: 'Secret', spec: { ...volume.secret, name: volume.secret.secretName } });
    }
    for (const source of asList(get(volume, 'projected', 'sources'))) {
      if (isRecord(source.configMap)) {
        sources.push({ kind: 'ConfigMap', spec: source.configMap });
      }
      if (isRecord(source.secret)) {
        sources.push({ kind: 'Secret', spec: source.secret });
      }
    }
    for (const { kind, spec } of sources) {
      const name = String(spec.name);
      const items = asList(spec.items);
      const object = findObject(objects, kind, name);
      const entries = items.length > 0 ? items.map((item) => [String(item.key), String(item.path)]) : (object ? dataKeys(object).map((key) => [key, key]) : []);
      for (const [key, path] of entries) {
        const fullPath = posix.join(String(mount.mountPath), path);
        if (mount.subPath === undefined) {
          files.set(fullPath, { kind, name, key });
        }
      }
    }
  }
  return files;
}

function containerPort(container: Json, port: unknown): Json | undefined {
  return asList(container.ports).find((entry) => (typeof port === 'number' ? entry.containerPort === port : entry.name === port));
}

function get(value: unknown, ...keys: Array<string | number>): unknown {
  let current = value;
  for (const key of keys) {
    if (Array.isArray(current) && typeof key === 'number') {
      current = current[key];
    } else if (isRecord(current) && typeof key === 'string') {
      current = current[key];
    } else {
      return undefined;
    }
  }
  return current;
}

function asList(value: unknown): Json[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function findRepoRoot(): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(directory, 'package.json')) || !existsSync(join(directory, 'k8s'))) {
    const parent = dirname(directory);
    if (parent === directory) {
      throw new Error('repository root not found above the test file');
    }
    directory = parent;
  }
  return directory;
}

/**
 * Parses the service configuration a container reads, after pointing every
 * `{ file: PATH }` at a temporary copy of the Secret or ConfigMap key
 * mounted at PATH. A path that no volume provides fails the test.
 */
function parseMountedServiceConfig(text: string, files: Map<string, MountedFile>, objects: K8sObject[]): ReturnType<typeof parseConfig> {
  const directory = mkdtempSync(join(tmpdir(), 'hawkbit-ext-authz-k8s-'));
  try {
    let counter = 0;
    const missing: string[] = [];
    const rewrite = (value: unknown): unknown => {
      if (Array.isArray(value)) {
        return value.map(rewrite);
      }
      if (!isRecord(value)) {
        return value;
      }
      const keys = Object.keys(value);
      if (keys.length === 1 && typeof value.file === 'string') {
        const source = files.get(value.file);
        const object = source && findObject(objects, source.kind, source.name);
        const content = object && source ? dataValue(object, source.key) : undefined;
        if (content === undefined) {
          missing.push(value.file);
          return value;
        }
        const copy = join(directory, `secret-${counter++}`);
        writeFileSync(copy, content);
        return { file: copy };
      }
      return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, rewrite(item)]));
    };
    const document = rewrite(yaml.load(text));
    expect(missing, 'secret files named in the configuration but not mounted').to.deep.equal([]);
    return parseConfig(yaml.dump(document), join(directory, 'config.yaml'), { env: {} });
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

const OVERLAYS = readdirSync(OVERLAYS_DIR).filter((name) => existsSync(join(OVERLAYS_DIR, name, 'kustomization.yaml'))).sort();

describe('deploy: Kubernetes manifests', function () {
  this.timeout(120_000);

  it('has the sidecar and shared overlays', function () {
    expect(OVERLAYS).to.include.members(['sidecar', 'shared']);
  });

  describe('schema checks catch mistakes', function () {
    let deployment: K8sObject;

    before(function () {
      deployment = renderOverlay(join(OVERLAYS_DIR, 'sidecar')).find((object) => object.kind === 'Deployment')!;
    });

    it('rejects a bad enum value', function () {
      const copy = structuredClone(deployment);
      (get(copy, 'spec', 'template', 'spec', 'containers', 0) as Json).imagePullPolicy = 'Sometimes';
      expect(schemaProblems(copy).join('\n')).to.contain('imagePullPolicy');
    });

    it('rejects a wrong type', function () {
      const copy = structuredClone(deployment);
      (get(copy, 'spec', 'template', 'spec', 'containers', 0, 'ports', 0) as Json).containerPort = 'eighty';
      expect(schemaProblems(copy).join('\n')).to.contain('containerPort');
    });

    it('rejects a missing required field', function () {
      const copy = structuredClone(deployment);
      delete (get(copy, 'spec') as Json).selector;
      expect(schemaProblems(copy).join('\n')).to.contain('selector');
    });

    it('rejects a misspelt field', function () {
      const copy = structuredClone(deployment);
      const container = get(copy, 'spec', 'template', 'spec', 'containers', 1) as Json;
      container.readinesProbe = container.readinessProbe;
      const problems = unknownFieldProblems([copy]);
      expect(problems).to.have.length(1);
      expect(problems[0]).to.contain('"readinesProbe"').and.contain('Deployment/hawkbit');
    });

    it('rejects a field in the wrong place', function () {
      const copy = structuredClone(deployment);
      (get(copy, 'spec', 'template', 'spec') as Json).readOnlyRootFilesystem = true;
      expect(unknownFieldProblems([copy]).join('\n')).to.contain('"readOnlyRootFilesystem"');
    });
  });

  for (const overlay of OVERLAYS) {
    describe(`overlay ${overlay}`, function () {
      let objects: K8sObject[];
      let all: Workload[];

      before(function () {
        objects = renderOverlay(join(OVERLAYS_DIR, overlay));
        all = workloads(objects);
      });

      function serviceWorkload(): { workload: Workload; container: Json } {
        for (const workload of all) {
          const container = containersOf(workload.podSpec).find((entry) => entry.name === SERVICE_CONTAINER);
          if (container) {
            return { workload, container };
          }
        }
        throw new Error(`no container named ${SERVICE_CONTAINER}`);
      }

      function envoyWorkload(): { workload: Workload; container: Json } {
        for (const workload of all) {
          const container = containersOf(workload.podSpec).find((entry) => entry.name === ENVOY_CONTAINER);
          if (container) {
            return { workload, container };
          }
        }
        throw new Error(`no container named ${ENVOY_CONTAINER}`);
      }

      /** Returns the Envoy bootstrap as Envoy reads it from its mounted ConfigMap. */
      function envoyBootstrapText(): string {
        const { workload, container } = envoyWorkload();
        const args = (container.args ?? []) as string[];
        const configPath = args[args.indexOf('-c') + 1];
        const file = mountedFiles(workload.podSpec, container, objects).get(configPath);
        expect(file, `Envoy's -c ${configPath} is mounted`).to.not.equal(undefined);
        return dataValue(findObject(objects, file!.kind, file!.name)!, file!.key)!;
      }

      it('renders objects in one namespace', function () {
        expect(objects.length).to.be.greaterThan(5);
        const namespaces = new Set(objects.filter((object) => object.kind !== 'Namespace').map((object) => object.metadata.namespace));
        expect([...namespaces]).to.deep.equal(['hawkbit']);
      });

      it('matches the Kubernetes API schemas', function () {
        const problems = objects.flatMap((object) => schemaProblems(object).map((problem) => `${object.kind}/${object.metadata.name}: ${problem}`));
        expect(problems).to.deep.equal([]);
      });

      it('has no unknown fields', function () {
        expect(unknownFieldProblems(objects)).to.deep.equal([]);
      });

      it('references existing ConfigMaps, Secrets and keys', function () {
        const problems: string[] = [];
        for (const { object, podSpec } of all) {
          const label = `${object.kind}/${object.metadata.name}`;
          const checkKey = (kind: 'ConfigMap' | 'Secret', name: string, key: string | undefined, where: string): void => {
            const target = findObject(objects, kind, name);
            if (!target) {
              problems.push(`${label}: ${where} names ${kind} "${name}", which does not exist`);
            } else if (key !== undefined && !dataKeys(target).includes(key)) {
              problems.push(`${label}: ${where} names key "${key}" of ${kind} "${name}", which does not exist`);
            }
          };
          for (const volume of asList(podSpec.volumes)) {
            const where = `volume ${String(volume.name)}`;
            if (isRecord(volume.configMap)) {
              checkKey('ConfigMap', String(volume.configMap.name), undefined, where);
              asList(volume.configMap.items).forEach((item) => checkKey('ConfigMap', String(get(volume, 'configMap', 'name')), String(item.key), where));
            }
            if (isRecord(volume.secret)) {
              checkKey('Secret', String(volume.secret.secretName), undefined, where);
              asList(volume.secret.items).forEach((item) => checkKey('Secret', String(get(volume, 'secret', 'secretName')), String(item.key), where));
            }
            for (const source of asList(get(volume, 'projected', 'sources'))) {
              for (const kind of ['ConfigMap', 'Secret'] as const) {
                const spec = source[kind === 'ConfigMap' ? 'configMap' : 'secret'];
                if (isRecord(spec)) {
                  checkKey(kind, String(spec.name), undefined, where);
                  asList(spec.items).forEach((item) => checkKey(kind, String(spec.name), String(item.key), where));
                }
              }
            }
          }
          for (const container of containersOf(podSpec)) {
            for (const variable of asList(container.env)) {
              const secretRef = get(variable, 'valueFrom', 'secretKeyRef');
              const configMapRef = get(variable, 'valueFrom', 'configMapKeyRef');
              if (isRecord(secretRef)) {
                checkKey('Secret', String(secretRef.name), String(secretRef.key), `env ${String(variable.name)}`);
              }
              if (isRecord(configMapRef)) {
                checkKey('ConfigMap', String(configMapRef.name), String(configMapRef.key), `env ${String(variable.name)}`);
              }
            }
            for (const source of asList(container.envFrom)) {
              if (isRecord(source.secretRef)) {
                checkKey('Secret', String(source.secretRef.name), undefined, 'envFrom');
              }
              if (isRecord(source.configMapRef)) {
                checkKey('ConfigMap', String(source.configMapRef.name), undefined, 'envFrom');
              }
            }
          }
        }
        expect(problems).to.deep.equal([]);
      });

      it('references existing ServiceAccounts, claims and volumes', function () {
        const problems: string[] = [];
        for (const { object, podSpec, claimTemplates } of all) {
          const label = `${object.kind}/${object.metadata.name}`;
          const account = podSpec.serviceAccountName;
          if (typeof account !== 'string' || !findObject(objects, 'ServiceAccount', account)) {
            problems.push(`${label}: serviceAccountName ${String(account)} does not exist`);
          }
          const volumeNames = new Set(asList(podSpec.volumes).map((volume) => String(volume.name)));
          for (const volume of asList(podSpec.volumes)) {
            const claim = get(volume, 'persistentVolumeClaim', 'claimName');
            if (typeof claim === 'string' && !findObject(objects, 'PersistentVolumeClaim', claim)) {
              problems.push(`${label}: claim ${claim} does not exist`);
            }
          }
          for (const container of containersOf(podSpec)) {
            for (const mount of asList(container.volumeMounts)) {
              if (!volumeNames.has(String(mount.name)) && !claimTemplates.includes(String(mount.name))) {
                problems.push(`${label}: container ${String(container.name)} mounts unknown volume ${String(mount.name)}`);
              }
            }
          }
        }
        expect(problems).to.deep.equal([]);
      });

      it('points Service ports at container ports', function () {
        const problems: string[] = [];
        for (const service of objects.filter((object) => object.kind === 'Service')) {
          const selector = get(service, 'spec', 'selector') as Record<string, string>;
          const targets = all.filter((workload) => selects(selector, workload.podLabels));
          if (targets.length === 0) {
            problems.push(`Service/${service.metadata.name} selects no workload`);
            continue;
          }
          for (const port of asList(get(service, 'spec', 'ports'))) {
            const target = port.targetPort ?? port.port;
            for (const workload of targets) {
              if (!containersOf(workload.podSpec).some((container) => containerPort(container, target))) {
                problems.push(`Service/${service.metadata.name} targetPort ${String(target)} is no container port of ${workload.object.metadata.name}`);
              }
            }
          }
        }
        expect(problems).to.deep.equal([]);
      });

      it('points probes at ports of their container', function () {
        const problems: string[] = [];
        for (const { object, podSpec } of all) {
          for (const container of containersOf(podSpec)) {
            for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
              const probe = container[kind];
              if (!isRecord(probe)) {
                continue;
              }
              const port = get(probe, 'httpGet', 'port') ?? get(probe, 'tcpSocket', 'port') ?? get(probe, 'grpc', 'port');
              if (port !== undefined && !containerPort(container, port)) {
                problems.push(`${object.metadata.name}/${String(container.name)} ${kind} port ${String(port)} is not a port of that container`);
              }
            }
          }
        }
        expect(problems).to.deep.equal([]);
      });

      it('selects pods with each PodDisruptionBudget', function () {
        const budgets = objects.filter((object) => object.kind === 'PodDisruptionBudget');
        expect(budgets.length).to.be.greaterThan(0);
        for (const budget of budgets) {
          const selector = get(budget, 'spec', 'selector', 'matchLabels') as Record<string, string>;
          expect(all.some((workload) => selects(selector, workload.podLabels)), `PodDisruptionBudget/${budget.metadata.name}`).to.equal(true);
        }
      });

      it('hardens every container', function () {
        const problems: string[] = [];
        for (const { object, podSpec } of all) {
          const podContext = (podSpec.securityContext ?? {}) as Json;
          if (get(podContext, 'seccompProfile', 'type') !== 'RuntimeDefault') {
            problems.push(`${object.metadata.name}: pod seccompProfile is not RuntimeDefault`);
          }
          if (podSpec.automountServiceAccountToken !== false) {
            problems.push(`${object.metadata.name}: the pod mounts a service account token`);
          }
          for (const container of containersOf(podSpec)) {
            const label = `${object.metadata.name}/${String(container.name)}`;
            const context = (container.securityContext ?? {}) as Json;
            if ((context.runAsNonRoot ?? podContext.runAsNonRoot) !== true) {
              problems.push(`${label}: runAsNonRoot is not true`);
            }
            if ((context.runAsUser ?? podContext.runAsUser) === 0) {
              problems.push(`${label}: runs as user 0`);
            }
            if (context.readOnlyRootFilesystem !== true) {
              problems.push(`${label}: readOnlyRootFilesystem is not true`);
            }
            if (context.allowPrivilegeEscalation !== false) {
              problems.push(`${label}: allowPrivilegeEscalation is not false`);
            }
            if (!((get(context, 'capabilities', 'drop') ?? []) as string[]).includes('ALL')) {
              problems.push(`${label}: capabilities do not drop ALL`);
            }
            for (const kind of ['requests', 'limits']) {
              for (const resource of ['cpu', 'memory']) {
                if (get(container, 'resources', kind, resource) === undefined) {
                  problems.push(`${label}: resources.${kind}.${resource} is not set`);
                }
              }
            }
          }
        }
        expect(problems).to.deep.equal([]);
      });

      it('carries the Envoy bootstrap from envoy/', function () {
        const expected = readFileSync(join(REPO_ROOT, 'envoy', ENVOY_SOURCES[overlay]), 'utf8');
        expect(envoyBootstrapText() === expected, `k8s/overlays/${overlay}/envoy.yaml differs from envoy/${ENVOY_SOURCES[overlay]}; copy it over`).to.equal(true);
      });

      it('mounts the files the Envoy bootstrap reads', function () {
        const { workload, container } = envoyWorkload();
        const files = mountedFiles(workload.podSpec, container, objects);
        const filenames: string[] = [];
        const walk = (value: unknown): void => {
          if (Array.isArray(value)) {
            value.forEach(walk);
          } else if (isRecord(value)) {
            if (typeof value.filename === 'string') {
              filenames.push(value.filename);
            }
            Object.values(value).forEach(walk);
          }
        };
        walk(yaml.load(envoyBootstrapText()));
        expect(filenames.length).to.be.greaterThan(0);
        for (const filename of filenames) {
          expect(files.has(filename), `${filename} is mounted into the envoy container`).to.equal(true);
        }
      });

      it('loads the service configuration', function () {
        const { workload, container } = serviceWorkload();
        const files = mountedFiles(workload.podSpec, container, objects);
        const file = files.get(SERVICE_CONFIG_PATH);
        expect(file, `${SERVICE_CONFIG_PATH}, which the image's CMD reads, is mounted`).to.not.equal(undefined);
        const text = dataValue(findObject(objects, file!.kind, file!.name)!, file!.key)!;
        const config = parseMountedServiceConfig(text, files, objects);
        expect(config.upstream.hawkbitHeaderAuth.enabled).to.equal(true);
        expect(config.mode).to.equal('enforce');
      });

      it('connects Envoy to where the service listens', function () {
        const bootstrap = yaml.load(envoyBootstrapText()) as Json;
        const cluster = asList(get(bootstrap, 'static_resources', 'clusters')).find((entry) => entry.name === EXT_AUTHZ_CLUSTER);
        const socket = get(cluster, 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address', 'socket_address') as Json;
        const host = String(socket.address);
        const port = Number(socket.port_value);

        const { workload, container } = serviceWorkload();
        const files = mountedFiles(workload.podSpec, container, objects);
        const file = files.get(SERVICE_CONFIG_PATH)!;
        const config = parseMountedServiceConfig(dataValue(findObject(objects, file.kind, file.name)!, file.key)!, files, objects);
        const listenPort = Number(config.grpc.address.split(':').at(-1));
        const envoyPod = envoyWorkload().workload;

        if (envoyPod === workload) {
          // Same pod: loopback, and the service must listen there.
          expect(host).to.equal('127.0.0.1');
          expect(config.grpc.address).to.equal(`127.0.0.1:${port}`);
        } else {
          const service = findObject(objects, 'Service', host.split('.')[0]);
          expect(service, `Service named by Envoy's ${EXT_AUTHZ_CLUSTER} address ${host}`).to.not.equal(undefined);
          expect(selects(get(service, 'spec', 'selector') as Record<string, string>, workload.podLabels), 'the Service selects the ext_authz pods').to.equal(true);
          const servicePort = asList(get(service, 'spec', 'ports')).find((entry) => entry.port === port);
          expect(servicePort, `Service port ${port}`).to.not.equal(undefined);
          const target = containerPort(container, servicePort!.targetPort ?? servicePort!.port);
          expect(target?.containerPort, 'the Service forwards to the gRPC port').to.equal(listenPort);
          expect(get(service, 'spec', 'clusterIP'), 'headless, so Envoy balances over all pods').to.equal('None');
          expect(get(cluster, 'type')).to.equal('STRICT_DNS');
        }
      });

      it('limits the gRPC port to Envoy', function () {
        const { workload, container } = serviceWorkload();
        const envoyPod = envoyWorkload().workload;
        const files = mountedFiles(workload.podSpec, container, objects);
        const file = files.get(SERVICE_CONFIG_PATH)!;
        const config = parseMountedServiceConfig(dataValue(findObject(objects, file.kind, file.name)!, file.key)!, files, objects);
        if (envoyPod === workload) {
          // In Envoy's pod the port is bound to loopback, which no other pod reaches.
          expect(config.grpc.address.startsWith('127.0.0.1:')).to.equal(true);
          return;
        }
        const listenPort = Number(config.grpc.address.split(':').at(-1));
        const policies = objects.filter((object) => object.kind === 'NetworkPolicy' && selects(get(object, 'spec', 'podSelector', 'matchLabels') as Record<string, string>, workload.podLabels));
        expect(policies, 'NetworkPolicies selecting the ext_authz pods').to.have.length(1);
        const policy = policies[0];
        expect(get(policy, 'spec', 'policyTypes')).to.include('Ingress');
        const rules = asList(get(policy, 'spec', 'ingress'));
        expect(rules.length).to.be.greaterThan(0);
        for (const rule of rules) {
          const peers = asList(rule.from);
          expect(peers.length, 'every ingress rule names its peers').to.be.greaterThan(0);
          for (const peer of peers) {
            expect(selects(get(peer, 'podSelector', 'matchLabels') as Record<string, string>, envoyPod.podLabels), 'the peer is the Envoy pod').to.equal(true);
            expect(peer.namespaceSelector).to.equal(undefined);
            expect(peer.ipBlock).to.equal(undefined);
          }
          for (const port of asList(rule.ports)) {
            expect(containerPort(container, port.port)?.containerPort).to.equal(listenPort);
          }
        }
      });

      it('keeps the Envoy pod reachable only on the device port', function () {
        const { workload, container } = envoyWorkload();
        const policies = objects.filter((object) => object.kind === 'NetworkPolicy' && selects(get(object, 'spec', 'podSelector', 'matchLabels') as Record<string, string>, workload.podLabels));
        expect(policies).to.have.length(1);
        const ports = asList(get(policies[0], 'spec', 'ingress')).flatMap((rule) => asList(rule.ports));
        expect(ports.map((port) => containerPort(container, port.port)?.containerPort)).to.deep.equal([8443]);
      });

      if (overlay === 'sidecar') {
        it('keeps store outages out of pod readiness', function () {
          const { container } = serviceWorkload();
          expect(container.readinessProbe, 'the sidecar has no readiness probe').to.equal(undefined);
          expect(container.startupProbe).to.equal(undefined);
          expect(get(container, 'livenessProbe', 'httpGet', 'path')).to.equal('/healthz');
        });
      }

      if (overlay === 'shared') {
        it('scales ext_authz with an autoscaler', function () {
          const { workload, container } = serviceWorkload();
          const autoscalers = objects.filter((object) => object.kind === 'HorizontalPodAutoscaler');
          expect(autoscalers).to.have.length(1);
          const target = get(autoscalers[0], 'spec', 'scaleTargetRef') as Json;
          expect(target.kind).to.equal(workload.object.kind);
          expect(target.name).to.equal(workload.object.metadata.name);
          expect(get(workload.object, 'spec', 'replicas'), 'replicas is left to the autoscaler').to.equal(undefined);
          expect(get(container, 'resources', 'requests', 'cpu')).to.be.a('string');
          expect(Number(get(autoscalers[0], 'spec', 'minReplicas'))).to.be.at.least(2);
        });

        it('probes readiness and liveness separately', function () {
          const { container } = serviceWorkload();
          expect(get(container, 'readinessProbe', 'httpGet', 'path')).to.equal('/readyz');
          expect(get(container, 'livenessProbe', 'httpGet', 'path')).to.equal('/healthz');
        });

        it('keeps Redis on a persistent volume', function () {
          const redis = all.find((workload) => workload.object.kind === 'StatefulSet');
          expect(redis, 'a StatefulSet for Redis').to.not.equal(undefined);
          expect(redis!.claimTemplates).to.include('data');
          const container = containersOf(redis!.podSpec)[0];
          expect(asList(container.volumeMounts).map((mount) => mount.name)).to.include('data');
          const { workload, container: service } = serviceWorkload();
          const files = mountedFiles(workload.podSpec, service, objects);
          const file = files.get(SERVICE_CONFIG_PATH)!;
          const config = parseMountedServiceConfig(dataValue(findObject(objects, file.kind, file.name)!, file.key)!, files, objects);
          expect(config.store.type).to.equal('redis');
          const url = new URL(config.store.type === 'redis' ? config.store.redis.url : '');
          const redisService = findObject(objects, 'Service', url.hostname);
          expect(redisService, `Service ${url.hostname} from store.redis.url`).to.not.equal(undefined);
          expect(asList(get(redisService, 'spec', 'ports')).some((port) => port.port === Number(url.port))).to.equal(true);
          expect(selects(get(redisService, 'spec', 'selector') as Record<string, string>, redis!.podLabels)).to.equal(true);
        });
      }
    });
  }
});
