import type { AuthMethod, Decision } from '../auth/decision.js';
import type { HeaderNameFilter, RequestHeaders } from '../auth/request.js';
import type { RunningConfig } from '../config/schema.js';
import { OVERWRITE_IF_EXISTS_OR_ADD, type CheckResponseMessage, type HeaderValueOptionMessage } from './messages.js';

/** gRPC status codes Envoy reads from CheckResponse.status. */
const GRPC_OK = 0;
const GRPC_PERMISSION_DENIED = 7;
const GRPC_UNAUTHENTICATED = 16;

/** hawkBit's header families: 1.0 and later, and 0.9 and older. Indexed forms end in `-N`. */
const HAWKBIT_HEADERS = ['x-controller-id', 'x-authority', 'x-ssl-client-cn', 'x-ssl-issuer-hash'];
/** RFC 9440 certificate headers: meaningful only from a trusted proxy, never passed upstream. */
const CERTIFICATE_HEADERS = ['client-cert', 'client-cert-chain'];
const INDEXED_HAWKBIT_HEADERS = ['x-authority', 'x-ssl-issuer-hash'];
const AUTH_METHODS: readonly AuthMethod[] = ['certificate', 'target-token', 'gateway-token'];
/** Upper bound on the tenants whose response parts are kept; past it the cache starts again. */
const MAX_CACHED_TENANTS = 1024;

/** The header option and dynamic metadata field that carry one value, shared by every response with that value. */
interface IdentityParts {
  option: HeaderValueOptionMessage;
  field: { stringValue: string };
}

/**
 * Turns decisions into CheckResponses. Built once per configuration, so the
 * per-request work is only the header values and the removal list. The parts
 * of an allow that depend only on the method or the tenant are built once and
 * shared, frozen, by every response, because each object a Check allocates
 * costs GC time inside the server (see docs/benchmarks.md).
 */
export class CheckResponseBuilder {
  /** Lower-case names to strip whenever a client sent them. */
  readonly #strippable: ReadonlySet<string>;
  /** Lower-case prefixes (`name-`) of indexed headers to strip. */
  readonly #strippablePrefixes: readonly string[];
  /**
   * Flags by character code below 128: 1 when a strippable name or prefix
   * starts with that character, so that most request headers are passed over
   * after one lookup. Every name that `removalList` reads is lower-case.
   */
  readonly #strippableFirstCharacters = new Uint8Array(128);
  /** Lower-case names the service sets on allow; never listed for removal. */
  readonly #setNames: ReadonlySet<string>;
  /** Client-sent headers to remove from an allow: strippable, and not set by the response. */
  readonly #allowRemoval: HeaderNameFilter = { matches: (name) => this.#isStrippable(name) && !this.#setNames.has(name) };
  /** Client-sent headers to remove from an audit pass, which sets none. */
  readonly #auditRemoval: HeaderNameFilter = { matches: (name) => this.#isStrippable(name) };
  /** Lower-case names of the identity headers and of hawkBit's own headers, set on allow. */
  readonly #identityNames: { tenant: string; controllerId: string; authMethod: string; hawkbitControllerId: string; hawkbitAuthority: string };
  /** The auth-method header option and metadata field, by method. */
  readonly #methodParts = new Map<AuthMethod, IdentityParts>();
  /** The tenant header option and metadata field, by tenant name. */
  readonly #tenantParts = new Map<string, IdentityParts>();

  constructor(private readonly config: RunningConfig) {
    const identity = config.upstream.identityHeaders;
    const auth = config.upstream.hawkbitHeaderAuth;
    const proxy = config.ddi.certificate.proxyHeaders;

    const setNames = [identity.tenant, identity.controllerId, identity.authMethod];
    if (auth.enabled) {
      setNames.push(auth.controllerIdHeader, auth.authorityHeader);
    }
    this.#setNames = new Set(setNames.map((name) => name.toLowerCase()));
    this.#identityNames = {
      tenant: identity.tenant.toLowerCase(),
      controllerId: identity.controllerId.toLowerCase(),
      authMethod: identity.authMethod.toLowerCase(),
      hawkbitControllerId: auth.controllerIdHeader.toLowerCase(),
      hawkbitAuthority: auth.authorityHeader.toLowerCase(),
    };

    const strippable = [
      ...setNames,
      ...HAWKBIT_HEADERS,
      ...CERTIFICATE_HEADERS,
      auth.controllerIdHeader,
      auth.authorityHeader,
      proxy.controllerIdHeader,
      proxy.authorityHeader,
      ...config.upstream.removeHeaders,
    ].map((name) => name.toLowerCase());
    this.#strippable = new Set(strippable);
    this.#strippablePrefixes = [
      ...new Set([...INDEXED_HAWKBIT_HEADERS, auth.authorityHeader, proxy.authorityHeader].map((name) => `${name.toLowerCase()}-`)),
    ];
    for (const name of [...this.#strippable, ...this.#strippablePrefixes]) {
      this.#strippableFirstCharacters[name.charCodeAt(0)] = 1;
    }
    for (const method of AUTH_METHODS) {
      this.#methodParts.set(method, identityParts(this.#identityNames.authMethod, method, method));
    }
  }

  build(decision: Decision, headers: RequestHeaders): CheckResponseMessage {
    if (decision.kind === 'deny') {
      const deniedHeaders = decision.retryAfterSeconds === undefined ? [] : [overwrite('retry-after', String(decision.retryAfterSeconds))];
      return {
        status: { code: decision.httpStatus === 401 ? GRPC_UNAUTHENTICATED : GRPC_PERMISSION_DENIED },
        denied_response: { status: { code: decision.httpStatus }, headers: deniedHeaders, body: '' },
      };
    }

    const names = this.#identityNames;
    const auth = this.config.upstream.hawkbitHeaderAuth;
    const controllerId = headerSafe(decision.controllerId);
    const tenant = this.#partsOfTenant(decision.tenant);
    const method = this.#methodParts.get(decision.method) ?? identityParts(names.authMethod, decision.method, decision.method);
    const set: HeaderValueOptionMessage[] = [tenant.option, overwrite(names.controllerId, controllerId), method.option];
    let remove = this.removalList(headers);
    if (auth.enabled) {
      set.push(overwrite(names.hawkbitControllerId, controllerId), overwrite(names.hawkbitAuthority, auth.authority));
      // hawkBit must not judge the credential again by its own, stricter rules.
      remove = remove.length === 0 ? AUTHORIZATION_ONLY : [...remove, 'authorization'];
    }

    return {
      status: OK_STATUS,
      ok_response: { headers: set, headers_to_remove: remove },
      dynamic_metadata: {
        fields: {
          tenant: tenant.field,
          controllerId: { stringValue: decision.controllerId },
          authMethod: method.field,
        },
      },
    };
  }

  #partsOfTenant(tenant: string): IdentityParts {
    let parts = this.#tenantParts.get(tenant);
    if (parts === undefined) {
      if (this.#tenantParts.size >= MAX_CACHED_TENANTS) {
        this.#tenantParts.clear();
      }
      parts = identityParts(this.#identityNames.tenant, headerSafe(tenant), tenant);
      this.#tenantParts.set(tenant, parts);
    }
    return parts;
  }

  /** Builds an OK response that sets no identity and only strips client-sent identity headers. */
  buildAuditPass(headers: RequestHeaders): CheckResponseMessage {
    return { status: OK_STATUS, ok_response: { headers: [], headers_to_remove: this.removalList(headers, false) } };
  }

  /**
   * Client-sent headers that must not reach the upstream, except those the
   * response sets: Envoy applies `headers_to_remove` after setting headers, so
   * a listed name would lose the value just set. Most requests carry none of
   * these headers, so they share one empty list.
   */
  private removalList(headers: RequestHeaders, keepSetNames = true): readonly string[] {
    return headers.namesMatching(keepSetNames ? this.#allowRemoval : this.#auditRemoval) ?? NO_HEADER_NAMES;
  }

  /** Returns whether a client-sent header with this lower-case name is stripped. */
  #isStrippable(name: string): boolean {
    // A code of 128 or more reads as undefined, so such a name goes on to the full check.
    if (this.#strippableFirstCharacters[name.charCodeAt(0)] === 0) {
      return false;
    }
    return this.#strippable.has(name) || this.#hasStrippablePrefix(name);
  }

  #hasStrippablePrefix(name: string): boolean {
    for (const prefix of this.#strippablePrefixes) {
      if (name.startsWith(prefix)) {
        return true;
      }
    }
    return false;
  }
}

/**
 * The 503 deny for a Check that failed in a way its steps did not catch. It is
 * a constant, so no builder code runs when it is needed, and frozen, because
 * every such Check shares it.
 */
export const INTERNAL_ERROR_RESPONSE: CheckResponseMessage = Object.freeze({
  status: Object.freeze({ code: GRPC_PERMISSION_DENIED }),
  denied_response: Object.freeze({
    status: Object.freeze({ code: 503 }),
    headers: Object.freeze([]) as unknown as HeaderValueOptionMessage[],
    body: '',
  }),
});

/** `append: false` overwrites in every Envoy version; some ignore `append_action`. Shared, because nothing writes to it. */
const APPEND_FALSE = Object.freeze({ value: false });
/** The status of every OK response, and removal lists without a client-sent header; shared like APPEND_FALSE. */
const OK_STATUS = Object.freeze({ code: GRPC_OK });
const NO_HEADER_NAMES: readonly string[] = Object.freeze([]);
const AUTHORIZATION_ONLY: readonly string[] = Object.freeze(['authorization']);

/** Builds the frozen header option that sets `key` to `value`, and the metadata field with `metadataValue`. */
function identityParts(key: string, value: string, metadataValue: string): IdentityParts {
  const option = overwrite(key, value);
  Object.freeze(option.header);
  return { option: Object.freeze(option), field: Object.freeze({ stringValue: metadataValue }) };
}

/** Returns a header option that replaces the header; `key` must be lower-case. */
function overwrite(key: string, value: string): HeaderValueOptionMessage {
  return { header: { key, value }, append: APPEND_FALSE, append_action: OVERWRITE_IF_EXISTS_OR_ADD };
}

/** Percent-encodes a value that is not printable ASCII, so it is a valid header value. */
export function headerSafe(value: string): string {
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    if (code < 0x21 || code > 0x7e) {
      return encodeURIComponent(value);
    }
  }
  return value;
}
