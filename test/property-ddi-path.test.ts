import { expect } from 'chai';
import fc from 'fast-check';

import { CONTROLLER_ID_MAX_LENGTH, parseDdiPath, TENANT_MAX_LENGTH, type DdiPathResult, type DdiTarget } from '../src/ddi/path.js';
import { anyString, applyEdits, fuzzParameters, replaying, stringEdits, tokenString } from './helpers/fuzz.js';

/** Characters that may stand literally in a path segment. `.` never gets encoded, because `%2E` is forbidden. */
const LITERAL_CHARACTERS = [...'abcxyzABCXYZ0189-_~.!$&\'()*+,=:@'];
/** Characters that must be percent-encoded: reserved or unsafe ASCII, and non-ASCII from 2 to 4 UTF-8 bytes. */
const ENCODED_CHARACTERS = [...'#?"<>[]^`{|}', 'ä', 'ü', 'é', '€', '中', '😀'];

/** Java's `\s` (hawkBit's rule for controller ids), then every Unicode control character (Cc). */
const JAVA_WHITESPACE_OR_CONTROL = /[\t\n\u000b\f\r \p{Cc}]/u;
/** In a `u` regular expression a surrogate range matches only unpaired surrogates. */
const LONE_SURROGATE = /[\ud800-\udfff]/u;

const REJECTION_REASONS = ['path_not_ddi', 'path_not_canonical', 'controller_id_invalid', 'tenant_invalid'];

/** Tokens that mutations insert: separators, escapes (valid, forbidden and broken), literals in other cases, whitespace. */
const PATH_TOKENS = [
  '/', '//', '.', '..', '%', '%2', '%2F', '%2f', '%5C', '%2E', '%25', '%00', '%3B', '%41', '%C3', '%A9', '%C3%A9',
  '%FF', '%E2%82%AC', ';', '\\', '?', '#', ' ', '\t', '\u0000', 'ä', 'controller', 'v1', 'Controller', 'V1', '%63',
  'x', 'A', '\u00a0', '\u2028', '%E2%80%A8', '%C2%A0', '%C2%85', '%7F', '%1F', '%20', '%09', '%0A', '+', '-',
];

function percentEncode(character: string, upperCase: boolean): string {
  const hex = [...Buffer.from(character, 'utf8')].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
  return upperCase ? hex.toUpperCase() : hex;
}

/** Generates a segment value and one of its valid encodings, in which literal characters are sometimes percent-encoded too. */
function encodedSegment(maxLength: number): fc.Arbitrary<{ value: string; encoded: string }> {
  const character = fc.oneof(
    { arbitrary: fc.constantFrom(...LITERAL_CHARACTERS), weight: 4 },
    { arbitrary: fc.constantFrom(...ENCODED_CHARACTERS), weight: 1 },
  );
  const piece = fc.tuple(character, fc.boolean(), fc.boolean()).map(([value, forceEncoding, upperCase]) => {
    const mustEncode = ENCODED_CHARACTERS.includes(value);
    const encode = mustEncode || (forceEncoding && value !== '.');
    return { value, encoded: encode ? percentEncode(value, upperCase) : value };
  });
  return fc
    .array(piece, { minLength: 1, maxLength })
    .map((pieces) => ({ value: pieces.map((item) => item.value).join(''), encoded: pieces.map((item) => item.encoded).join('') }))
    .filter((segment) => segment.value !== '.' && segment.value !== '..');
}

interface GeneratedPath {
  path: string;
  tenant: string;
  controllerId: string;
}

/** Valid DDI request targets with their decoded tenant and controller id. */
const ddiPath: fc.Arbitrary<GeneratedPath> = fc
  .record({
    tenant: encodedSegment(TENANT_MAX_LENGTH),
    controllerId: encodedSegment(60),
    tail: fc.array(fc.oneof(fc.constantFrom('deploymentBase', '12', 'feedback', 'configData', 'softwaremodules', 'artifacts', 'image.swu'), encodedSegment(8).map((segment) => segment.encoded)), {
      maxLength: 3,
    }),
    trailingSlash: fc.boolean(),
    query: fc.option(fc.string({ maxLength: 30 }).map((text) => `?${text}`), { nil: '' }),
  })
  .map(({ tenant, controllerId, tail, trailingSlash, query }) => ({
    path: `/${[tenant.encoded, 'controller', 'v1', controllerId.encoded, ...tail].join('/')}${trailingSlash ? '/' : ''}${query}`,
    tenant: tenant.value,
    controllerId: controllerId.value,
  }));

const mutatedDdiPath: fc.Arbitrary<string> = fc
  .tuple(ddiPath, stringEdits(fc.oneof(fc.constantFrom(...PATH_TOKENS), anyString(3))))
  .map(([generated, edits]) => applyEdits(generated.path, edits));

/** A literal path segment, now and then empty or a dot segment. */
const literalSegment = fc.oneof(
  { arbitrary: fc.constantFrom('T', 'd', 'x.y', '.x', 'x..', 't'.repeat(41)), weight: 4 },
  { arbitrary: fc.constantFrom('', '.', '..'), weight: 1 },
);

/** DDI-shaped paths of literal segments, with each part now and then replaced, empty or a dot segment. */
const literalDdiLikePath: fc.Arbitrary<string> = fc
  .record({
    tenant: literalSegment,
    controller: fc.oneof({ arbitrary: fc.constant('controller'), weight: 4 }, { arbitrary: literalSegment, weight: 1 }),
    version: fc.oneof({ arbitrary: fc.constant('v1'), weight: 4 }, { arbitrary: literalSegment, weight: 1 }),
    controllerId: literalSegment,
    rest: fc.array(literalSegment, { maxLength: 3 }),
    end: fc.constantFrom('', '/', '//', '/.', '/..', '?a=1', '?a/./b', '/?a=1'),
  })
  .map(({ tenant, controller, version, controllerId, rest, end }) => `/${[tenant, controller, version, controllerId, ...rest].join('/')}${end}`);

/** Arbitrary strings, strings of path tokens, and DDI paths, mostly mutated. */
const anyTarget: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: anyString(300), weight: 2 },
  { arbitrary: tokenString(PATH_TOKENS), weight: 2 },
  { arbitrary: mutatedDdiPath, weight: 5 },
  { arbitrary: ddiPath.map((generated) => generated.path), weight: 1 },
);

function encodeMinimally(value: string): string {
  return encodeURIComponent(value);
}

/** Percent-encodes everything but letters, digits, `-`, `_`, `~` and `.`. */
function encodeMaximally(value: string, upperCase: boolean): string {
  return [...value].map((character) => (/^[A-Za-z0-9\-_~.]$/.test(character) ? character : percentEncode(character, upperCase))).join('');
}

/** Checks the invariants of an ok result, and that encoding its segments again gives the same target. */
function checkAcceptedTarget(target: DdiTarget): void {
  const tenantLength = [...target.tenant].length;
  const controllerIdLength = [...target.controllerId].length;
  expect(tenantLength, 'tenant length').to.be.within(1, TENANT_MAX_LENGTH);
  expect(controllerIdLength, 'controller id length').to.be.within(1, CONTROLLER_ID_MAX_LENGTH);
  expect(JAVA_WHITESPACE_OR_CONTROL.test(target.tenant), 'whitespace or control character in tenant').to.equal(false);
  expect(JAVA_WHITESPACE_OR_CONTROL.test(target.controllerId), 'whitespace or control character in controller id').to.equal(false);
  expect(LONE_SURROGATE.test(target.tenant) || LONE_SURROGATE.test(target.controllerId), 'unpaired surrogate').to.equal(false);
  expect(target.tenantKey).to.equal(target.tenant.toUpperCase());

  const encodings = [
    [encodeMinimally(target.tenant), encodeMinimally(target.controllerId)],
    [encodeMaximally(target.tenant, true), encodeMaximally(target.controllerId, false)],
  ];
  for (const [tenant, controllerId] of encodings) {
    const again = parseDdiPath(`/${tenant}/controller/v1/${controllerId}`);
    expect(again, `re-encoded as /${tenant}/controller/v1/${controllerId}`).to.deep.equal({ ok: true, target });
  }
}

/**
 * Checks an accepted request target against a reference reading of the rules: the path part has
 * no forbidden form, and the standard `decodeURIComponent`, which rejects bytes that are not UTF-8,
 * decodes tenant and controller id to the values returned.
 */
function checkAcceptedPath(rawTarget: string, target: DdiTarget): void {
  const pathPart = rawTarget.split('?')[0];
  expect(pathPart.startsWith('/'), 'leading slash').to.equal(true);
  expect(/^[\x21-\x7e]*$/.test(pathPart), 'only printable ASCII').to.equal(true);
  expect(/\/\/|[;\\#]|%(2f|5c|25|2e|3b|00)/i.test(pathPart), 'forbidden form').to.equal(false);

  const segments = pathPart.slice(1).replace(/\/$/, '').split('/');
  expect(segments.slice(1, 3), 'literal segments').to.deep.equal(['controller', 'v1']);
  const invalidSegment = segments.find((segment) => segment === '.' || segment === '..' || decodeOrUndefined(segment) === undefined);
  expect(invalidSegment, 'dot segment or invalid percent-encoding').to.equal(undefined);
  expect(decodeURIComponent(segments[0])).to.equal(target.tenant);
  expect(decodeURIComponent(segments[3])).to.equal(target.controllerId);
}

function decodeOrUndefined(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function checkResult(result: DdiPathResult, rawTarget: string): void {
  if (result.ok) {
    checkAcceptedPath(rawTarget, result.target);
    checkAcceptedTarget(result.target);
  } else {
    expect(REJECTION_REASONS).to.include(result.reason);
  }
}

/** Forms that StrictHttpFirewall rejects, or whose decoding an upstream could read differently. Each is rejected anywhere in the path. */
const FORBIDDEN_INSERTIONS = [
  '//', ';', ';jsessionid=1', '\\',
  '%2F', '%2f', '%5C', '%5c', '%2E', '%2e', '%25', '%00', '%3B', '%3b',
  // Percent signs that start no escape, whatever follows them.
  '%g', '%4g', '%zz', '%%41', '%-1',
  // Bytes that are not UTF-8 whatever surrounds them: never-valid bytes, an overlong form, a surrogate, a cut sequence.
  '%FF', '%fe', '%C0%AF', '%c1%81', '%ED%A0%80', '%F8%88%80%80%80', '%E2%82x', '%F0%9F%98',
];

/** A DDI path, or a mutated one, with one forbidden form put into its path part (before any `?`). */
const pathWithForbiddenForm: fc.Arbitrary<{ path: string; form: string }> = fc
  .tuple(
    fc.oneof(ddiPath.map((generated) => generated.path), mutatedDdiPath),
    fc.nat({ max: 10_000 }),
    fc.oneof(
      fc.constantFrom(...FORBIDDEN_INSERTIONS).map((text) => ({ kind: 'insert' as const, text })),
      fc.constantFrom('/./', '/../').map((text) => ({ kind: 'dot-segment' as const, text })),
      fc.constantFrom('/.', '/..', '/./', '/../').map((text) => ({ kind: 'dot-segment-at-end' as const, text })),
    ),
  )
  .map(([path, position, form]) => {
    const queryStart = path.indexOf('?');
    const pathPart = queryStart === -1 ? path : path.slice(0, queryStart);
    const query = queryStart === -1 ? '' : path.slice(queryStart);

    if (form.kind === 'insert') {
      const at = position % (pathPart.length + 1);
      return { path: pathPart.slice(0, at) + form.text + pathPart.slice(at) + query, form: form.text };
    }
    if (form.kind === 'dot-segment-at-end') {
      return { path: pathPart + form.text + query, form: form.text };
    }
    // A dot segment replaces one of the slashes, so it sits between two segments.
    const slashes = [...pathPart].flatMap((character, index) => (character === '/' ? [index] : []));
    if (slashes.length === 0) {
      return { path: `${form.text}${pathPart}${query}`, form: form.text };
    }
    const slash = slashes[position % slashes.length];
    return { path: pathPart.slice(0, slash) + form.text + pathPart.slice(slash + 1) + query, form: form.text };
  });

describe('DDI path parser properties', () => {
  it('decodes generated DDI paths', () => {
    fc.assert(
      fc.property(ddiPath, (generated) => {
        const result = parseDdiPath(generated.path);
        expect(result).to.deep.equal({
          ok: true,
          target: { tenant: generated.tenant, tenantKey: generated.tenant.toUpperCase(), controllerId: generated.controllerId },
        });
        checkResult(result, generated.path);
      }),
      fuzzParameters(),
    );
  });

  it('literal shortcut matches segment reading', () => {
    // Without a percent sign, the shortcut for the usual DDI path applies, and it must agree with the general reading.
    const literalTarget = fc.oneof(literalDdiLikePath, anyTarget.map((target) => target.replaceAll('%', '')));
    fc.assert(
      fc.property(literalTarget, (target) => {
        expect(parseDdiPath(target), target).to.deep.equal(parseDdiPath(target, false));
      }),
      fuzzParameters(),
    );
  });

  it('keeps its invariants on any input', () => {
    let accepted = 0;
    fc.assert(
      fc.property(anyTarget, (target) => {
        const result = parseDdiPath(target);
        checkResult(result, target);
        accepted += result.ok ? 1 : 0;
      }),
      fuzzParameters(),
    );
    // Mutations that keep a path valid reach the re-encoding check; without them the property would test only rejections.
    if (!replaying) {
      expect(accepted, 'accepted inputs').to.be.greaterThan(0);
    }
  });

  it('rejects every path with a forbidden form', () => {
    fc.assert(
      fc.property(pathWithForbiddenForm, ({ path }) => {
        const result = parseDdiPath(path);
        expect(result.ok, path).to.equal(false);
      }),
      fuzzParameters(),
    );
  });

  it('rejects encoded whitespace in identifiers', () => {
    const controlOrSpace = fc.oneof(fc.integer({ min: 0x01, max: 0x20 }), fc.integer({ min: 0x7f, max: 0x9f })).map((code) => String.fromCharCode(code));
    fc.assert(
      fc.property(ddiPath, controlOrSpace, fc.boolean(), fc.nat(), (generated, character, inTenant, position) => {
        const codePoints = [...(inTenant ? generated.tenant : generated.controllerId)];
        const at = position % (codePoints.length + 1);
        const changed = [...codePoints.slice(0, at), character, ...codePoints.slice(at)].join('');
        const tenant = encodeURIComponent(inTenant ? changed : generated.tenant);
        const controllerId = encodeURIComponent(inTenant ? generated.controllerId : changed);
        const result = parseDdiPath(`/${tenant}/controller/v1/${controllerId}`);
        expect(result.ok).to.equal(false);
      }),
      fuzzParameters(),
    );
  });
});
