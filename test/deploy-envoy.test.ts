/**
 * Checks the Envoy bootstraps in envoy/ against Envoy's real v3 API protos
 * (the copy in @grpc/grpc-js-xds/deps), then checks the security settings
 * that hawkbit-ext-authz relies on, and that the service configuration files
 * next to them load.
 *
 * The schema check follows Envoy's own loader: YAML becomes JSON, and the
 * JSON is parsed with protobuf's JSON rules (unknown fields rejected,
 * `google.protobuf.Any` resolved by `@type`), then protoc-gen-validate rules
 * are applied. Rules it does not evaluate are listed in UNCHECKED_RULES; any
 * other rule it meets and does not know is reported as a problem, so a new
 * rule cannot pass unnoticed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import yaml from 'js-yaml';
import protobuf from 'protobufjs';
import { parseConfig } from '../src/config/load.js';

const REPO_ROOT = findRepoRoot();
const PROTO_DEPS = join(REPO_ROOT, 'node_modules/@grpc/grpc-js-xds/deps');
const PROTO_ROOTS = [
  join(PROTO_DEPS, 'envoy-api'),
  join(PROTO_DEPS, 'googleapis'),
  join(PROTO_DEPS, 'xds'),
  join(PROTO_DEPS, 'protoc-gen-validate'),
  // google/protobuf/descriptor.proto, which the annotation protos import.
  join(REPO_ROOT, 'node_modules/protobufjs'),
];
const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';
const ANY_TYPE_PREFIX = 'type.googleapis.com/';

const EXT_AUTHZ_TYPE = 'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
const EXT_AUTHZ_PER_ROUTE_TYPE = 'envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute';
const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TLS_CONTEXT_TYPE = 'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const HTTP_PROTOCOL_OPTIONS_TYPE = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const EXT_AUTHZ_FILTER = 'envoy.filters.http.ext_authz';

// ---------------------------------------------------------------------------
// Proto loading
// ---------------------------------------------------------------------------

/**
 * Loads the bootstrap proto and, for every `@type` named in the documents,
 * all protos of that type's package directory, so any extension the files
 * use is known without a hand-kept list.
 */
function loadEnvoyProtos(documents: unknown[]): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => {
    for (const base of PROTO_ROOTS) {
      const candidate = join(base, target);
      if (existsSync(candidate)) {
        return candidate;
      }
    }
    return target;
  };

  const files = new Set<string>(['envoy/config/bootstrap/v3/bootstrap.proto']);
  for (const document of documents) {
    for (const typeUrl of collectTypeUrls(document)) {
      const packagePath = typeUrl.slice(ANY_TYPE_PREFIX.length).split('.').slice(0, -1).join('/');
      const directory = join(PROTO_DEPS, 'envoy-api', packagePath);
      if (!existsSync(directory)) {
        continue; // reported as an unknown @type by the validator
      }
      for (const name of readdirSync(directory)) {
        if (name.endsWith('.proto')) {
          files.add(`${packagePath}/${name}`);
        }
      }
    }
  }
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

function collectTypeUrls(value: unknown, found = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    value.forEach((item) => collectTypeUrls(item, found));
  } else if (isRecord(value)) {
    for (const [key, item] of Object.entries(value)) {
      if (key === '@type' && typeof item === 'string' && item.startsWith(ANY_TYPE_PREFIX)) {
        found.add(item);
      } else {
        collectTypeUrls(item, found);
      }
    }
  }
  return found;
}

// ---------------------------------------------------------------------------
// Validator
// ---------------------------------------------------------------------------

interface SchemaProblem {
  /** Where the problem is, as `a.b[0].c`. */
  path: string;
  message: string;
}

interface ValidatorOptions {
  /**
   * Accept protobuf JSON names (lowerCamelCase) besides proto field names.
   * Envoy parses YAML as protobuf JSON, which accepts both.
   */
  allowJsonNames: boolean;
}

/** protoc-gen-validate rules that the validator skips: regexes, address forms, uniqueness. */
const UNCHECKED_RULES = new Set(['well_known_regex', 'strict', 'pattern', 'ignore_empty', 'prefix', 'suffix', 'contains', 'not_contains', 'address', 'ip', 'ipv4', 'ipv6', 'hostname', 'uri', 'unique', 'skip']);

/** protoc-gen-validate rules that the validator evaluates, by kind. */
const CHECKED_RULES: Record<string, Set<string>> = {
  string: new Set(['min_len', 'max_len', 'min_bytes', 'max_bytes', 'in', 'not_in', 'const']),
  bool: new Set(['const']),
  number: new Set(['gt', 'gte', 'lt', 'lte', 'const', 'in', 'not_in']),
  duration: new Set(['gt', 'gte', 'lt', 'lte', 'const', 'required']),
  enum: new Set(['defined_only', 'in', 'not_in', 'const']),
};

const INTEGER_RANGES: Record<string, [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

const WRAPPER_SCALARS: Record<string, string> = {
  '.google.protobuf.BoolValue': 'bool',
  '.google.protobuf.StringValue': 'string',
  '.google.protobuf.BytesValue': 'bytes',
  '.google.protobuf.Int32Value': 'int32',
  '.google.protobuf.UInt32Value': 'uint32',
  '.google.protobuf.Int64Value': 'int64',
  '.google.protobuf.UInt64Value': 'uint64',
  '.google.protobuf.DoubleValue': 'double',
  '.google.protobuf.FloatValue': 'float',
};

/** Proto3 JSON form of google.protobuf.Duration: seconds with up to 9 fractional digits. */
const DURATION_PATTERN = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

class EnvoyConfigValidator {
  constructor(
    private readonly root: protobuf.Root,
    private readonly options: ValidatorOptions = { allowJsonNames: true },
  ) {}

  /** Validates a parsed YAML document as a message of `typeName` and returns every problem found. */
  validate(document: unknown, typeName = BOOTSTRAP_TYPE): SchemaProblem[] {
    const problems: SchemaProblem[] = [];
    this.checkMessage(document, this.root.lookupType(typeName), '', problems);
    return problems;
  }

  private checkMessage(value: unknown, type: protobuf.Type, path: string, problems: SchemaProblem[]): void {
    const name = type.fullName;
    if (WRAPPER_SCALARS[name]) {
      this.checkScalar(value, WRAPPER_SCALARS[name], path, problems);
      return;
    }
    switch (name) {
      case '.google.protobuf.Duration':
        if (typeof value !== 'string' || !DURATION_PATTERN.test(value)) {
          problems.push({ path, message: `expected a duration such as "0.25s" or "5s", got ${describeValue(value)}` });
        }
        return;
      case '.google.protobuf.Timestamp':
        if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) {
          problems.push({ path, message: `expected an RFC 3339 timestamp, got ${describeValue(value)}` });
        }
        return;
      case '.google.protobuf.FieldMask':
        if (typeof value !== 'string') {
          problems.push({ path, message: `expected a field mask string, got ${describeValue(value)}` });
        }
        return;
      case '.google.protobuf.Struct':
        if (!isRecord(value)) {
          problems.push({ path, message: `expected a mapping (google.protobuf.Struct), got ${describeValue(value)}` });
        }
        return;
      case '.google.protobuf.ListValue':
        if (!Array.isArray(value)) {
          problems.push({ path, message: `expected a list (google.protobuf.ListValue), got ${describeValue(value)}` });
        }
        return;
      case '.google.protobuf.Value':
        return; // any JSON value
      case '.google.protobuf.Any':
        this.checkAny(value, path, problems);
        return;
    }

    if (!isRecord(value)) {
      problems.push({ path, message: `expected a mapping for ${trimDot(name)}, got ${describeValue(value)}` });
      return;
    }
    const present = new Set<protobuf.Field>();
    for (const [key, item] of Object.entries(value)) {
      const fieldPath = joinPath(path, key);
      const field = this.findField(type, key);
      if (!field) {
        problems.push({ path: fieldPath, message: `unknown field "${key}" in ${trimDot(name)}${suggest(key, Object.keys(type.fields))}` });
        continue;
      }
      if (present.has(field)) {
        problems.push({ path: fieldPath, message: `field "${field.name}" is set twice (proto name and JSON name)` });
        continue;
      }
      present.add(field);
      if (field.options?.deprecated === true) {
        problems.push({ path: fieldPath, message: `field "${field.name}" of ${trimDot(name)} is deprecated` });
      }
      if (item === null) {
        problems.push({ path: fieldPath, message: 'null value; remove the key to leave the field unset' });
        continue;
      }
      this.checkField(item, field, fieldPath, problems);
    }
    this.checkMessageRules(type, present, path, problems);
  }

  private checkAny(value: unknown, path: string, problems: SchemaProblem[]): void {
    if (!isRecord(value)) {
      problems.push({ path, message: `expected a mapping with "@type", got ${describeValue(value)}` });
      return;
    }
    const typeUrl = value['@type'];
    if (typeof typeUrl !== 'string' || !typeUrl.startsWith(ANY_TYPE_PREFIX)) {
      problems.push({ path: joinPath(path, '@type'), message: `expected "@type: ${ANY_TYPE_PREFIX}<message name>", got ${describeValue(typeUrl)}` });
      return;
    }
    const typeName = typeUrl.slice(ANY_TYPE_PREFIX.length);
    let packed: protobuf.Type;
    try {
      packed = this.root.lookupType(typeName);
    } catch {
      problems.push({ path: joinPath(path, '@type'), message: `unknown message type "${typeName}" in Envoy's v3 API` });
      return;
    }
    const { '@type': _ignored, ...rest } = value;
    if (packed.fullName.startsWith('.google.protobuf.') && packed.fullName !== '.google.protobuf.Empty') {
      // Well-known types with a special JSON form are packed as { "@type", "value" }.
      this.checkMessage(rest.value, packed, joinPath(path, 'value'), problems);
      return;
    }
    this.checkMessage(rest, packed, path, problems);
  }

  private findField(type: protobuf.Type, key: string): protobuf.Field | undefined {
    const direct = type.fields[key];
    if (direct) {
      return direct;
    }
    if (!this.options.allowJsonNames) {
      return undefined;
    }
    return Object.values(type.fields).find((field) => jsonName(field) === key);
  }

  private checkField(value: unknown, field: protobuf.Field, path: string, problems: SchemaProblem[]): void {
    const rules = validateRules(field);
    if (field instanceof protobuf.MapField) {
      if (!isRecord(value)) {
        problems.push({ path, message: `expected a mapping for map field "${field.name}", got ${describeValue(value)}` });
        return;
      }
      for (const [key, item] of Object.entries(value)) {
        this.checkScalar(key, field.keyType, joinPath(path, key), problems);
        this.checkSingle(item, field, joinPath(path, key), rules?.map?.values, problems);
      }
      checkCount(Object.keys(value).length, rules?.map?.min_pairs, rules?.map?.max_pairs, 'entries', path, problems);
      return;
    }
    if (field.repeated) {
      if (!Array.isArray(value)) {
        problems.push({ path, message: `expected a list for repeated field "${field.name}", got ${describeValue(value)}` });
        return;
      }
      value.forEach((item, index) => this.checkSingle(item, field, `${path}[${index}]`, rules?.repeated?.items, problems));
      checkCount(value.length, rules?.repeated?.min_items, rules?.repeated?.max_items, 'items', path, problems);
      return;
    }
    this.checkSingle(value, field, path, rules, problems);
  }

  /** Checks one value of a field (an element, for repeated and map fields) and the field's value rules. */
  private checkSingle(value: unknown, field: protobuf.Field, path: string, rules: Rules | undefined, problems: SchemaProblem[]): void {
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Type) {
      this.checkMessage(value, resolved, path, problems);
      if (resolved.fullName === '.google.protobuf.Duration' && typeof value === 'string' && rules?.duration) {
        checkDurationRules(value, rules.duration, path, problems);
      }
      if (WRAPPER_SCALARS[resolved.fullName] && rules) {
        checkScalarRules(value, rules, path, problems);
      }
      return;
    }
    if (resolved instanceof protobuf.Enum) {
      const names = Object.keys(resolved.values);
      const known = typeof value === 'string' ? names.includes(value) : typeof value === 'number' && Object.values(resolved.values).includes(value);
      if (!known) {
        problems.push({ path, message: `${describeValue(value)} is not a value of enum ${trimDot(resolved.fullName)}; expected one of ${names.join(', ')}` });
        return;
      }
      const number = typeof value === 'string' ? resolved.values[value] : value;
      if (rules?.enum) {
        reportUnknownRules('enum', rules.enum, path, problems);
        checkInSet(number, rules.enum, path, problems);
      }
      return;
    }
    this.checkScalar(value, field.type, path, problems);
    if (rules) {
      checkScalarRules(value, rules, path, problems);
    }
  }

  private checkScalar(value: unknown, scalar: string, path: string, problems: SchemaProblem[]): void {
    if (scalar in INTEGER_RANGES) {
      const number = toBigInt(value);
      const [min, max] = INTEGER_RANGES[scalar];
      if (number === undefined || number < min || number > max) {
        problems.push({ path, message: `expected ${scalar} (an integer from ${min} to ${max}), got ${describeValue(value)}` });
      }
      return;
    }
    switch (scalar) {
      case 'string':
        if (typeof value !== 'string') {
          problems.push({ path, message: `expected a string, got ${describeValue(value)}` });
        }
        return;
      case 'bool':
        if (typeof value !== 'boolean') {
          problems.push({ path, message: `expected true or false, got ${describeValue(value)}` });
        }
        return;
      case 'double':
      case 'float':
        if (typeof value !== 'number' && !(typeof value === 'string' && /^(NaN|-?Infinity|-?\d+(\.\d+)?([eE][-+]?\d+)?)$/.test(value))) {
          problems.push({ path, message: `expected a number, got ${describeValue(value)}` });
        }
        return;
      case 'bytes':
        if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) {
          problems.push({ path, message: `expected base64 bytes, got ${describeValue(value)}` });
        }
        return;
      default:
        problems.push({ path, message: `scalar type ${scalar} is not supported by this validator` });
    }
  }

  /** Applies the message-level rules: required fields, required oneofs, at most one member per oneof. */
  private checkMessageRules(type: protobuf.Type, present: Set<protobuf.Field>, path: string, problems: SchemaProblem[]): void {
    for (const field of Object.values(type.fields)) {
      const rules = validateRules(field);
      // Rules on a oneof member apply only when that member is the one set.
      if (field.partOf) {
        continue;
      }
      const required = rules?.message?.required === true || rules?.duration?.required === true || rules?.any?.required === true || rules?.timestamp?.required === true;
      if (required && !present.has(field)) {
        problems.push({ path: joinPath(path, field.name), message: `required field "${field.name}" of ${trimDot(type.fullName)} is missing` });
      }
      if (!present.has(field)) {
        const minimumLength = rules?.string?.min_len ?? rules?.string?.min_bytes;
        const minimumItems = rules?.repeated?.min_items ?? rules?.map?.min_pairs;
        if ((typeof minimumLength === 'number' && minimumLength > 0) || (typeof minimumItems === 'number' && minimumItems > 0)) {
          problems.push({ path: joinPath(path, field.name), message: `required field "${field.name}" of ${trimDot(type.fullName)} is missing (must not be empty)` });
        }
      }
    }
    for (const oneof of type.oneofsArray) {
      const members = oneof.fieldsArray.filter((field) => present.has(field));
      if (members.length > 1) {
        problems.push({ path, message: `fields ${members.map((field) => `"${field.name}"`).join(' and ')} are alternatives (oneof ${oneof.name}); set only one` });
      }
      const required = oneof.options?.['(validate.required)'] === true;
      // proto3 `optional` fields form synthetic oneofs whose names start with "_".
      if (required && members.length === 0) {
        problems.push({ path, message: `one of ${oneof.fieldsArray.map((field) => `"${field.name}"`).join(', ')} is required in ${trimDot(type.fullName)}` });
      }
    }
  }
}

/**
 * The protoc-gen-validate rules of one field as protobufjs parsed them, keyed
 * by kind: `{ string: { min_len: 1 } }`, `{ repeated: { items: {...} } }`.
 */
type Rules = Record<string, any>;

function validateRules(field: protobuf.Field): Rules | undefined {
  const parsed = (field as unknown as { parsedOptions?: Array<Record<string, unknown>> }).parsedOptions;
  let merged: Rules | undefined;
  for (const entry of parsed ?? []) {
    const rules = entry['(validate.rules)'];
    if (isRecord(rules)) {
      merged = { ...(merged ?? {}), ...(rules as Rules) };
    }
  }
  return merged;
}

function checkScalarRules(value: unknown, rules: Rules, path: string, problems: SchemaProblem[]): void {
  for (const [kind, constraint] of Object.entries(rules)) {
    if (!isRecord(constraint) || kind === 'message') {
      continue;
    }
    reportUnknownRules(kind, constraint, path, problems);
    if (kind === 'string' && typeof value === 'string') {
      const length = [...value].length;
      const bytes = Buffer.byteLength(value);
      if (typeof constraint.min_len === 'number' && length < constraint.min_len) {
        problems.push({ path, message: `must have at least ${constraint.min_len} characters` });
      }
      if (typeof constraint.max_len === 'number' && length > constraint.max_len) {
        problems.push({ path, message: `must have at most ${constraint.max_len} characters` });
      }
      if (typeof constraint.min_bytes === 'number' && bytes < constraint.min_bytes) {
        problems.push({ path, message: `must have at least ${constraint.min_bytes} bytes` });
      }
      if (typeof constraint.max_bytes === 'number' && bytes > constraint.max_bytes) {
        problems.push({ path, message: `must have at most ${constraint.max_bytes} bytes` });
      }
      checkInSet(value, constraint, path, problems);
    } else if (kind === 'bool' && typeof value === 'boolean') {
      if (typeof constraint.const === 'boolean' && value !== constraint.const) {
        problems.push({ path, message: `must be ${constraint.const}` });
      }
    } else if (kind in INTEGER_RANGES || kind === 'double' || kind === 'float') {
      const number = Number(value);
      checkBounds(number, constraint, (bound) => Number(bound), path, problems, String);
      checkInSet(number, constraint, path, problems);
    }
  }
}

function reportUnknownRules(kind: string, constraint: Record<string, unknown>, path: string, problems: SchemaProblem[]): void {
  const checked = CHECKED_RULES[kind in INTEGER_RANGES || kind === 'double' || kind === 'float' ? 'number' : kind];
  for (const rule of Object.keys(constraint)) {
    if (!UNCHECKED_RULES.has(rule) && !checked?.has(rule)) {
      problems.push({ path, message: `validation rule ${kind}.${rule} is not implemented by this validator; add it before relying on this field` });
    }
  }
}

function checkDurationRules(value: string, rules: Record<string, unknown>, path: string, problems: SchemaProblem[]): void {
  reportUnknownRules('duration', rules, path, problems);
  const nanos = durationToNanos(value);
  if (nanos === undefined) {
    return; // already reported as malformed
  }
  checkBounds(nanos, rules, (bound) => protoDurationToNanos(bound), path, problems, (bound) => `${Number(bound) / 1e9}s`);
}

function checkBounds(
  value: number | bigint,
  rules: Record<string, unknown>,
  convert: (bound: unknown) => number | bigint,
  path: string,
  problems: SchemaProblem[],
  show: (bound: number | bigint) => string,
): void {
  const compare: Array<[string, (a: number | bigint, b: number | bigint) => boolean, string]> = [
    ['gt', (a, b) => a > b, 'greater than'],
    ['gte', (a, b) => a >= b, 'at least'],
    ['lt', (a, b) => a < b, 'less than'],
    ['lte', (a, b) => a <= b, 'at most'],
    ['const', (a, b) => a === b, 'exactly'],
  ];
  for (const [key, holds, words] of compare) {
    if (rules[key] !== undefined) {
      const bound = convert(rules[key]);
      if (!holds(value, bound)) {
        problems.push({ path, message: `must be ${words} ${show(bound)}` });
      }
    }
  }
}

function checkInSet(value: unknown, rules: Record<string, unknown>, path: string, problems: SchemaProblem[]): void {
  const allowed = rules.in;
  const forbidden = rules.not_in;
  if (Array.isArray(allowed) && !allowed.includes(value)) {
    problems.push({ path, message: `must be one of ${allowed.join(', ')}` });
  }
  if (Array.isArray(forbidden) && forbidden.includes(value)) {
    problems.push({ path, message: `must not be ${String(value)}` });
  }
  if (rules.const !== undefined && typeof value !== 'number' && value !== rules.const) {
    problems.push({ path, message: `must be ${String(rules.const)}` });
  }
}

function checkCount(count: number, min: unknown, max: unknown, noun: string, path: string, problems: SchemaProblem[]): void {
  if (typeof min === 'number' && count < min) {
    problems.push({ path, message: `must have at least ${min} ${noun}` });
  }
  if (typeof max === 'number' && count > max) {
    problems.push({ path, message: `must have at most ${max} ${noun}` });
  }
}

function durationToNanos(text: string): bigint | undefined {
  const match = DURATION_PATTERN.exec(text);
  if (!match) {
    return undefined;
  }
  const nanos = BigInt(match[2]) * 1_000_000_000n + BigInt((match[3] ?? '').padEnd(9, '0'));
  return match[1] ? -nanos : nanos;
}

function protoDurationToNanos(bound: unknown): bigint {
  const record = isRecord(bound) ? bound : {};
  return BigInt(Number(record.seconds ?? 0)) * 1_000_000_000n + BigInt(Number(record.nanos ?? 0));
}

function toBigInt(value: unknown): bigint | undefined {
  if (typeof value === 'number' && Number.isInteger(value)) {
    return BigInt(value);
  }
  if (typeof value === 'string' && /^-?\d+$/.test(value)) {
    return BigInt(value);
  }
  return undefined;
}

/** The protobuf JSON name of a field: the json_name option, else lowerCamelCase. */
function jsonName(field: protobuf.Field): string {
  const explicit = field.options?.json_name;
  return typeof explicit === 'string' ? explicit : protobuf.util.camelCase(field.name);
}

function suggest(key: string, names: string[]): string {
  const normalized = key.toLowerCase().replace(/[-_]/g, '');
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of names) {
    const distance = editDistance(normalized, name.toLowerCase().replace(/_/g, ''));
    if (distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  return best !== undefined && bestDistance <= 3 ? `; did you mean "${best}"?` : '';
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length];
}

function joinPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function trimDot(name: string): string {
  return name.startsWith('.') ? name.slice(1) : name;
}

function describeValue(value: unknown): string {
  if (value === undefined) {
    return 'nothing';
  }
  if (Array.isArray(value)) {
    return 'a list';
  }
  if (isRecord(value)) {
    return 'a mapping';
  }
  return `${typeof value} ${JSON.stringify(value)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function findRepoRoot(): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(directory, 'package.json')) || !existsSync(join(directory, 'envoy'))) {
    const parent = dirname(directory);
    if (parent === directory) {
      throw new Error('repository root not found above the test file');
    }
    directory = parent;
  }
  return directory;
}

// ---------------------------------------------------------------------------
// Helpers over parsed bootstraps
// ---------------------------------------------------------------------------

type Json = Record<string, unknown>;

/** Every `Any` in the document whose `@type` names `typeName`, with its path. */
function findTyped(document: unknown, typeName: string, path = ''): Array<{ path: string; value: Json }> {
  const found: Array<{ path: string; value: Json }> = [];
  if (Array.isArray(document)) {
    document.forEach((item, index) => found.push(...findTyped(item, typeName, `${path}[${index}]`)));
  } else if (isRecord(document)) {
    if (document['@type'] === ANY_TYPE_PREFIX + typeName) {
      found.push({ path, value: document });
    }
    for (const [key, item] of Object.entries(document)) {
      found.push(...findTyped(item, typeName, joinPath(path, key)));
    }
  }
  return found;
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
  return Array.isArray(value) ? (value.filter(isRecord)) : [];
}

interface RouteView {
  name: string;
  route: Json;
  extAuthzDisabled: boolean;
}

/**
 * Picks the route Envoy would use for `path` in the first virtual host:
 * the first route whose prefix, path or safe_regex matches the path
 * without its query string. RE2 and JavaScript agree on the regexes used here.
 */
function selectRoute(routeConfig: Json, path: string): RouteView | undefined {
  const pathOnly = path.split('?')[0];
  const virtualHost = asList(routeConfig.virtual_hosts)[0];
  for (const route of asList(virtualHost?.routes)) {
    const match = isRecord(route.match) ? route.match : {};
    let matches = false;
    if (typeof match.prefix === 'string') {
      matches = pathOnly.startsWith(match.prefix);
    } else if (typeof match.path === 'string') {
      matches = pathOnly === match.path;
    } else if (isRecord(match.safe_regex) && typeof match.safe_regex.regex === 'string') {
      // Envoy's safe_regex must match the whole path.
      matches = new RegExp(`^(?:${match.safe_regex.regex})$`).test(pathOnly);
    }
    if (matches) {
      const perFilter = get(route, 'typed_per_filter_config', EXT_AUTHZ_FILTER);
      const disabled = isRecord(perFilter) && perFilter['@type'] === ANY_TYPE_PREFIX + EXT_AUTHZ_PER_ROUTE_TYPE && perFilter.disabled === true;
      return { name: String(route.name ?? ''), route, extAuthzDisabled: disabled };
    }
  }
  return undefined;
}

function clusterByName(bootstrap: Json, name: string): Json | undefined {
  return asList(get(bootstrap, 'static_resources', 'clusters')).find((cluster) => cluster.name === name);
}

/** The HTTP connection managers of listeners that carry the ext_authz filter. */
function deviceConnectionManagers(bootstrap: Json): Array<{ listener: Json; hcm: Json; chain: Json }> {
  const result: Array<{ listener: Json; hcm: Json; chain: Json }> = [];
  for (const listener of asList(get(bootstrap, 'static_resources', 'listeners'))) {
    for (const chain of asList(listener.filter_chains)) {
      for (const filter of asList(chain.filters)) {
        const hcm = filter.typed_config;
        if (isRecord(hcm) && hcm['@type'] === ANY_TYPE_PREFIX + HCM_TYPE && asList(hcm.http_filters).some((entry) => entry.name === EXT_AUTHZ_FILTER)) {
          result.push({ listener, hcm, chain });
        }
      }
    }
  }
  return result;
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

const ENVOY_DIR = join(REPO_ROOT, 'envoy');
const BOOTSTRAP_FILES = readdirSync(ENVOY_DIR).filter((name) => /^envoy.*\.ya?ml$/.test(name)).sort();
const SERVICE_CONFIG_FILES = readdirSync(ENVOY_DIR).filter((name) => /^ext-authz.*\.ya?ml$/.test(name)).sort();

/** Bootstraps whose devices reach Envoy over TLS directly; the rest sit behind a TLS-terminating proxy. */
function terminatesDeviceTls(bootstrap: Json): boolean {
  return findTyped(bootstrap, TLS_CONTEXT_TYPE).length > 0;
}

/** Values for the `{ env: NAME }` secrets of the example service configurations. */
const EXAMPLE_ENV: NodeJS.ProcessEnv = {
  HAWKBIT_AUTHORITY: 'edge-authority-0123456789abcdef',
  GATEWAY_KEY_DEFAULT: 'gateway-key-for-tests',
  TOKEN_DIGEST_KEY: 'digest-key-for-tests',
  DEVICE_01_TOKEN: '0123456789abcdef0123456789abcdef',
  REDIS_PASSWORD: 'redis-password-for-tests',
};

const DDI_SAMPLE_PATHS = [
  '/DEFAULT/controller/v1/device-01',
  '/DEFAULT/controller/v1/device-01/deploymentBase/3?c=-2129030598',
  '/DEFAULT/controller/v1/device-01/softwaremodules/7/artifacts/app.bin',
  '/DEFAULT/controller/v1/device-01/softwaremodules/7/artifacts/app.bin.MD5SUM',
  '/DEFAULT/controller/v1/device-01/installedBase',
  // Tenants named like management paths must still be checked.
  '/rest/controller/v1/device-01',
  '/UI/controller/v1/device-01',
  '/actuator/controller/v1/device-01',
];
const MANAGEMENT_SAMPLE_PATHS = [
  '/rest/v1/targets',
  '/rest/v1/softwaremodules/7/artifacts',
  '/system/admin/tenants',
  '/actuator/health',
  '/UI',
  '/UI/login',
  '/VAADIN/build/app.js',
  '/swagger-ui/index.html',
  '/v3/api-docs',
];
const OTHER_SAMPLE_PATHS = ['/', '/favicon.ico', '/DEFAULT/controller', '/restricted', '/UIs/x', '/DEFAULT/rest/v1/targets'];

describe('deploy: Envoy bootstraps', function () {
  let root: protobuf.Root;
  const bootstraps = new Map<string, Json>();

  before(function () {
    for (const name of BOOTSTRAP_FILES) {
      bootstraps.set(name, yaml.load(readFileSync(join(ENVOY_DIR, name), 'utf8')) as Json);
    }
    root = loadEnvoyProtos([...bootstraps.values()]);
  });

  it('finds the bootstraps and service configurations', function () {
    expect(BOOTSTRAP_FILES).to.include.members(['envoy.yaml', 'envoy-shared.yaml', 'envoy-behind-proxy.yaml']);
    expect(SERVICE_CONFIG_FILES).to.include.members(['ext-authz.yaml', 'ext-authz-behind-proxy.yaml']);
  });

  describe('schema validator', function () {
    let validator: EnvoyConfigValidator;
    let fixture: Json;

    before(function () {
      validator = new EnvoyConfigValidator(root);
    });

    beforeEach(function () {
      fixture = structuredClone(bootstraps.get('envoy.yaml')!);
    });

    function extAuthzOf(document: Json): Json {
      return findTyped(document, EXT_AUTHZ_TYPE)[0].value;
    }

    function hcmOf(document: Json): Json {
      return deviceConnectionManagers(document)[0].hcm;
    }

    it('accepts the unchanged sidecar bootstrap', function () {
      expect(validator.validate(fixture)).to.deep.equal([]);
    });

    it('rejects a misspelt key', function () {
      const filter = extAuthzOf(fixture);
      filter.include_peer_certificates = filter.include_peer_certificate;
      delete filter.include_peer_certificate;
      const problems = validator.validate(fixture);
      expect(problems).to.have.length(1);
      expect(problems[0].path).to.match(/http_filters\[0\]\.typed_config\.include_peer_certificates$/);
      expect(problems[0].message).to.contain('unknown field').and.contain('did you mean "include_peer_certificate"');
    });

    it('rejects a key in the wrong message', function () {
      const hcm = hcmOf(fixture);
      const routeConfig = hcm.route_config as Json;
      routeConfig.merge_slashes = true;
      const problems = validator.validate(fixture);
      expect(problems).to.have.length(1);
      expect(problems[0].path).to.match(/route_config\.merge_slashes$/);
      expect(problems[0].message).to.contain('envoy.config.route.v3.RouteConfiguration');
    });

    it('rejects a bad enum value', function () {
      hcmOf(fixture).forward_client_cert_details = 'SANITISE_SET';
      const problems = validator.validate(fixture);
      expect(problems).to.have.length(1);
      expect(problems[0].path).to.match(/forward_client_cert_details$/);
      expect(problems[0].message).to.contain('SANITIZE_SET');
    });

    it('rejects a missing required field', function () {
      const route = asList(get(hcmOf(fixture), 'route_config', 'virtual_hosts', 0, 'routes'))[0];
      delete route.match;
      const problems = validator.validate(fixture);
      expect(problems).to.have.length(1);
      expect(problems[0].path).to.match(/routes\[0\]\.match$/);
      expect(problems[0].message).to.contain('required field "match"');
    });

    it('rejects a missing required oneof', function () {
      delete hcmOf(fixture).route_config;
      const problems = validator.validate(fixture);
      expect(problems.map((problem) => problem.message)).to.satisfy((messages: string[]) => messages.some((message) => message.includes('"route_config"') && message.includes('is required')));
    });

    it('rejects an empty string where one is required', function () {
      const grpcService = extAuthzOf(fixture).grpc_service as Json;
      (grpcService.envoy_grpc as Json).cluster_name = '';
      const problems = validator.validate(fixture);
      expect(problems).to.have.length(1);
      expect(problems[0].path).to.match(/envoy_grpc\.cluster_name$/);
    });

    it('rejects two members of one oneof', function () {
      const route = asList(get(hcmOf(fixture), 'route_config', 'virtual_hosts', 0, 'routes'))[0];
      route.direct_response = { status: 404 };
      const problems = validator.validate(fixture);
      expect(problems.some((problem) => problem.message.includes('"route" and "direct_response"'))).to.equal(true);
    });

    it('rejects a malformed duration', function () {
      (extAuthzOf(fixture).grpc_service as Json).timeout = '1 second';
      const problems = validator.validate(fixture);
      expect(problems).to.have.length(1);
      expect(problems[0].message).to.contain('duration');
    });

    it('rejects a wrapper given as a mapping', function () {
      const tls = findTyped(fixture, TLS_CONTEXT_TYPE)[0].value;
      tls.require_client_certificate = { value: false };
      const problems = validator.validate(fixture);
      expect(problems).to.have.length(1);
      expect(problems[0].path).to.match(/require_client_certificate$/);
    });

    it('rejects a Struct given as a list', function () {
      const logFormat = get(hcmOf(fixture), 'access_log', 0, 'typed_config', 'log_format') as Json;
      logFormat.json_format = ['%START_TIME%'];
      const problems = validator.validate(fixture);
      expect(problems).to.have.length(1);
      expect(problems[0].message).to.contain('google.protobuf.Struct');
    });

    it('rejects an unknown @type', function () {
      extAuthzOf(fixture)['@type'] = `${ANY_TYPE_PREFIX}envoy.extensions.filters.http.ext_authz.v3.ExtAuth`;
      const problems = validator.validate(fixture);
      expect(problems).to.have.length(1);
      expect(problems[0].message).to.contain('unknown message type');
    });

    it('rejects a field inside a typed_config that its @type lacks', function () {
      const router = findTyped(fixture, 'envoy.extensions.filters.http.router.v3.Router')[0].value;
      router.include_peer_certificate = true;
      const problems = validator.validate(fixture);
      expect(problems).to.have.length(1);
      expect(problems[0].message).to.contain('envoy.extensions.filters.http.router.v3.Router');
    });

    it('rejects a per-route disabled: false', function () {
      const routes = asList(get(hcmOf(fixture), 'route_config', 'virtual_hosts', 0, 'routes'));
      const perRoute = findTyped(routes, EXT_AUTHZ_PER_ROUTE_TYPE)[0].value;
      perRoute.disabled = false;
      const problems = validator.validate(fixture);
      expect(problems).to.have.length(1);
      expect(problems[0].message).to.contain('must be true');
    });

    it('rejects a deprecated field', function () {
      hcmOf(fixture).http_protocol_options = { allow_chunked_length: true };
      const route = asList(get(hcmOf(fixture), 'route_config', 'virtual_hosts', 0, 'routes'))[0];
      (route.route as Json).max_grpc_timeout = '1s';
      const problems = validator.validate(fixture);
      expect(problems.some((problem) => problem.message.includes('"max_grpc_timeout"') && problem.message.includes('deprecated'))).to.equal(true);
    });

    it('rejects a port out of range', function () {
      const cluster = clusterByName(fixture, 'hawkbit')!;
      const socket = get(cluster, 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address', 'socket_address') as Json;
      socket.port_value = 70000;
      const problems = validator.validate(fixture);
      expect(problems.length).to.be.greaterThan(0);
      expect(problems[0].path).to.match(/port_value$/);
    });

    it('accepts protobuf JSON names only when allowed', function () {
      const filter = extAuthzOf(fixture);
      filter.includePeerCertificate = filter.include_peer_certificate;
      delete filter.include_peer_certificate;
      expect(validator.validate(fixture)).to.deep.equal([]);
      const strict = new EnvoyConfigValidator(root, { allowJsonNames: false });
      expect(strict.validate(fixture).map((problem) => problem.path)).to.have.length(1);
    });
  });

  for (const name of BOOTSTRAP_FILES) {
    describe(name, function () {
      let bootstrap: Json;

      before(function () {
        bootstrap = bootstraps.get(name)!;
      });

      it('matches Envoy v3 API protos', function () {
        const problems = new EnvoyConfigValidator(root, { allowJsonNames: false }).validate(bootstrap);
        expect(problems.map((problem) => `${problem.path}: ${problem.message}`)).to.deep.equal([]);
      });

      it('ext_authz fails closed with a deadline', function () {
        const filters = findTyped(bootstrap, EXT_AUTHZ_TYPE);
        expect(filters, 'ext_authz filters').to.have.length.greaterThan(0);
        for (const { path, value } of filters) {
          expect(value.transport_api_version, path).to.equal('V3');
          expect(value, `${path} writes failure_mode_allow out`).to.have.property('failure_mode_allow', false);
          expect(value.include_peer_certificate, path).to.equal(true);
          expect(get(value, 'status_on_error', 'code'), path).to.be.a('string');
          const timeout = get(value, 'grpc_service', 'timeout');
          expect(timeout, `${path} grpc_service.timeout`).to.be.a('string').and.match(DURATION_PATTERN);
          const nanos = durationToNanos(timeout as string)!;
          expect(Number(nanos) / 1e9, `${path} timeout in seconds`).to.be.greaterThan(0).and.at.most(5);
        }
      });

      it('ext_authz cluster speaks HTTP/2', function () {
        for (const { path, value } of findTyped(bootstrap, EXT_AUTHZ_TYPE)) {
          const clusterName = get(value, 'grpc_service', 'envoy_grpc', 'cluster_name');
          expect(clusterName, path).to.be.a('string');
          const cluster = clusterByName(bootstrap, clusterName as string);
          expect(cluster, `cluster ${String(clusterName)}`).to.not.equal(undefined);
          const options = get(cluster, 'typed_extension_protocol_options', HTTP_PROTOCOL_OPTIONS_TYPE) as Json | undefined;
          expect(options?.['@type']).to.equal(ANY_TYPE_PREFIX + HTTP_PROTOCOL_OPTIONS_TYPE);
          expect(get(options, 'explicit_http_config', 'http2_protocol_options')).to.be.an('object');
        }
      });

      it('ext_authz runs before the router', function () {
        for (const { hcm } of deviceConnectionManagers(bootstrap)) {
          const names = asList(hcm.http_filters).map((filter) => filter.name);
          expect(names.indexOf(EXT_AUTHZ_FILTER)).to.be.lessThan(names.indexOf('envoy.filters.http.router'));
          expect(names.at(-1)).to.equal('envoy.filters.http.router');
        }
      });

      it('normalizes paths and rejects escaped slashes', function () {
        const managers = deviceConnectionManagers(bootstrap);
        expect(managers).to.have.length.greaterThan(0);
        for (const { hcm } of managers) {
          expect(hcm.normalize_path).to.equal(true);
          expect(hcm.merge_slashes).to.equal(true);
          expect(hcm.path_with_escaped_slashes_action).to.equal('REJECT_REQUEST');
          expect(get(hcm, 'common_http_protocol_options', 'headers_with_underscores_action')).to.equal('REJECT_REQUEST');
        }
      });

      it('uses the connection peer as source address', function () {
        // hawkbit-ext-authz compares source.address with trustedProxies, so
        // Envoy must not replace it with an X-Forwarded-For entry.
        for (const { hcm } of deviceConnectionManagers(bootstrap)) {
          expect(hcm.use_remote_address).to.equal(true);
          expect(hcm.xff_num_trusted_hops ?? 0).to.equal(0);
          expect(hcm.original_ip_detection_extensions).to.equal(undefined);
        }
      });

      it('sets or strips client certificate details', function () {
        for (const { hcm } of deviceConnectionManagers(bootstrap)) {
          if (terminatesDeviceTls(bootstrap)) {
            expect(hcm.forward_client_cert_details).to.equal('SANITIZE_SET');
            expect(hcm.set_current_client_cert_details).to.deep.equal({ subject: true, cert: true, chain: true, uri: true, dns: true });
          } else {
            // No client certificate on this hop: drop any XFCC a client sends.
            expect(hcm.forward_client_cert_details ?? 'SANITIZE').to.equal('SANITIZE');
          }
        }
      });

      it('makes client certificates optional but verified', function () {
        const contexts = findTyped(bootstrap, TLS_CONTEXT_TYPE);
        if (!terminatesDeviceTls(bootstrap)) {
          // Behind an outer proxy: a plain listener, so no client certificate to verify.
          for (const { chain } of deviceConnectionManagers(bootstrap)) {
            expect(chain.transport_socket).to.equal(undefined);
          }
          return;
        }
        for (const { path, value } of contexts) {
          expect(value.require_client_certificate, path).to.equal(false);
          const validation = get(value, 'common_tls_context', 'validation_context');
          expect(get(validation, 'trusted_ca', 'filename'), `${path} trusted_ca`).to.be.a('string').and.not.equal('');
        }
        for (const { chain } of deviceConnectionManagers(bootstrap)) {
          expect(get(chain, 'transport_socket', 'typed_config', '@type')).to.equal(ANY_TYPE_PREFIX + TLS_CONTEXT_TYPE);
        }
      });

      it('checks DDI paths', function () {
        for (const { hcm } of deviceConnectionManagers(bootstrap)) {
          for (const path of DDI_SAMPLE_PATHS) {
            const route = selectRoute(hcm.route_config as Json, path);
            expect(route, path).to.not.equal(undefined);
            expect(route!.extAuthzDisabled, `${path} via route ${route!.name}`).to.equal(false);
          }
        }
      });

      it('skips ext_authz only on management paths', function () {
        for (const { hcm } of deviceConnectionManagers(bootstrap)) {
          for (const path of MANAGEMENT_SAMPLE_PATHS) {
            expect(selectRoute(hcm.route_config as Json, path)?.extAuthzDisabled, path).to.equal(true);
          }
          for (const path of OTHER_SAMPLE_PATHS) {
            const route = selectRoute(hcm.route_config as Json, path);
            expect(route, path).to.not.equal(undefined);
            expect(route!.extAuthzDisabled, path).to.equal(false);
          }
        }
      });

      it('strips identity headers where ext_authz is off', function () {
        const expected = ['x-ddi-tenant', 'x-ddi-controller-id', 'x-ddi-auth-method', 'x-controller-id', 'x-authority', 'x-authority-0', 'x-authority-1', 'x-ssl-client-cn', 'x-ssl-issuer-hash-1'];
        for (const { hcm } of deviceConnectionManagers(bootstrap)) {
          const routes = asList(get(hcm, 'route_config', 'virtual_hosts', 0, 'routes'));
          for (const route of routes) {
            const perFilter = get(route, 'typed_per_filter_config', EXT_AUTHZ_FILTER);
            if (isRecord(perFilter) && perFilter.disabled === true) {
              expect(route.request_headers_to_remove, String(route.name)).to.include.members(expected);
            }
          }
          // Envoy applies route-level removals after ext_authz has set its
          // headers, so they must not sit on checked routes or above them.
          expect(get(hcm, 'route_config', 'request_headers_to_remove')).to.equal(undefined);
          expect(get(hcm, 'route_config', 'virtual_hosts', 0, 'request_headers_to_remove')).to.equal(undefined);
        }
      });

      it('logs the identity from dynamic metadata', function () {
        for (const { hcm } of deviceConnectionManagers(bootstrap)) {
          const format = get(hcm, 'access_log', 0, 'typed_config', 'log_format', 'json_format') as Json;
          expect(format).to.be.an('object');
          const values = Object.values(format).map(String);
          for (const key of ['tenant', 'controllerId', 'authMethod']) {
            expect(values).to.include(`%DYNAMIC_METADATA(envoy.filters.http.ext_authz:${key})%`);
          }
          expect(values.join(' ').toLowerCase()).to.not.contain('authorization');
        }
      });

      it('keeps the admin interface on loopback', function () {
        expect(get(bootstrap, 'admin', 'address', 'socket_address', 'address')).to.equal('127.0.0.1');
      });

      it('references only defined clusters', function () {
        const defined = new Set(asList(get(bootstrap, 'static_resources', 'clusters')).map((cluster) => cluster.name));
        const referenced = new Set<unknown>();
        const walk = (value: unknown): void => {
          if (Array.isArray(value)) {
            value.forEach(walk);
          } else if (isRecord(value)) {
            if (typeof value.cluster === 'string') {
              referenced.add(value.cluster);
            }
            if (typeof value.cluster_name === 'string' && !('endpoints' in value)) {
              referenced.add(value.cluster_name);
            }
            Object.values(value).forEach(walk);
          }
        };
        walk(get(bootstrap, 'static_resources', 'listeners'));
        expect([...referenced].filter((name) => !defined.has(name))).to.deep.equal([]);
      });
    });
  }

  describe('service configurations', function () {
    for (const name of SERVICE_CONFIG_FILES) {
      it(`${name} passes parseConfig`, function () {
        const config = parseConfig(readFileSync(join(ENVOY_DIR, name), 'utf8'), join(ENVOY_DIR, name), { env: EXAMPLE_ENV });
        expect(config.mode).to.equal('enforce');
        expect(config.upstream.hawkbitHeaderAuth.enabled).to.equal(true);
        expect(config.ddi.certificate.trustXfcc).to.equal(false);
      });
    }

    it('ext-authz.yaml listens where envoy.yaml connects', function () {
      const config = parseConfig(readFileSync(join(ENVOY_DIR, 'ext-authz.yaml'), 'utf8'), join(ENVOY_DIR, 'ext-authz.yaml'), { env: EXAMPLE_ENV });
      const bootstrap = bootstraps.get('envoy.yaml')!;
      const cluster = clusterByName(bootstrap, 'hawkbit_ext_authz');
      const socket = get(cluster, 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address', 'socket_address') as Json;
      expect(config.grpc.address).to.equal(`${String(socket.address)}:${String(socket.port_value)}`);
    });

    it('behind-proxy config trusts only listed proxies', function () {
      const file = join(ENVOY_DIR, 'ext-authz-behind-proxy.yaml');
      const config = parseConfig(readFileSync(file, 'utf8'), file, { env: EXAMPLE_ENV });
      expect(config.ddi.certificate.trustedProxies).to.have.length.greaterThan(0);
      for (const entry of config.ddi.certificate.trustedProxies) {
        expect(entry, 'a proxy entry must not trust every address').to.not.match(/^(0\.0\.0\.0\/0|::\/0)$/);
      }
    });
  });
});
