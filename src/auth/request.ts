/**
 * A Check request in the pipeline's terms, free of Envoy's message types.
 * The Envoy adapter builds it from a CheckRequest.
 */
export interface AuthRequest {
  /** Envoy's `x-request-id`, for the decision log; empty when absent. */
  requestId: string;
  /** Raw request target as Envoy sends it, query string included. */
  path: string;
  /** HTTP method. */
  method: string;
  headers: RequestHeaders;
  /** IP address of the downstream peer (`source.address`), IPv4-mapped IPv6 unmapped; undefined when not an IP socket. */
  sourceAddress: string | undefined;
  /** `source.certificate`: the URL-encoded PEM of the verified peer leaf, or empty. */
  peerCertificate: string;
  /** Sum of header name and value lengths, for the request limits. */
  headerBytes: number;
  /** Number of header entries as Envoy sent them. */
  headerCount: number;
}

/** A selector of header names. It is an object rather than a function, so that a filter made once serves every request. */
export interface HeaderNameFilter {
  /** Returns whether the lower-case header name is selected. */
  matches(lowerCaseName: string): boolean;
}

/**
 * Request headers by lower-case name. Each name keeps every value it arrived
 * with: Envoy's `headers` map gives one comma-joined value, its `header_map`
 * one entry per header line. Lookups take the name in lower case, because
 * lower-casing it on every lookup cost about 12 ns each, a dozen times per Check.
 */
export class RequestHeaders {
  /**
   * Envoy's `headers` map itself, read in place instead of copied on every
   * Check, when all its names are lower-case, as Envoy's header maps keep them.
   */
  #lowerCaseMap: Readonly<Record<string, string>> | undefined;
  /** One value as a string, more than one as an array, so the usual single header costs no array. */
  #values: Map<string, string | string[]> | undefined;

  /** Wraps a header map whose names are all lower-case, without copying it; `add` copies it first. */
  static ofLowerCaseMap(map: Readonly<Record<string, string>>): RequestHeaders {
    const headers = new RequestHeaders();
    headers.#lowerCaseMap = map;
    return headers;
  }

  add(name: string, value: string): void {
    const values = this.#ownValues();
    const key = name.toLowerCase();
    const existing = values.get(key);
    if (existing === undefined) {
      values.set(key, value);
    } else if (typeof existing === 'string') {
      values.set(key, [existing, value]);
    } else {
      existing.push(value);
    }
  }

  /** Returns all values of a header, in arrival order, or an empty list when absent. */
  all(lowerCaseName: string): readonly string[] {
    const values = this.#get(lowerCaseName);
    if (values === undefined) {
      return NO_VALUES;
    }
    return typeof values === 'string' ? [values] : values;
  }

  /** Returns the first value of a header, or undefined when absent. */
  first(lowerCaseName: string): string | undefined {
    const values = this.#get(lowerCaseName);
    return typeof values === 'string' || values === undefined ? values : values[0];
  }

  /** Returns the single value of a header, undefined when absent, or `null` when the header arrived more than once. */
  single(lowerCaseName: string): string | undefined | null {
    const values = this.#get(lowerCaseName);
    if (typeof values === 'string' || values === undefined) {
      return values;
    }
    return values.length === 1 ? values[0] : null;
  }

  has(lowerCaseName: string): boolean {
    return this.#get(lowerCaseName) !== undefined;
  }

  /**
   * Returns the lower-case names that `filter` accepts, in arrival order, or
   * undefined when it accepts none. A wrapped header map is read with for-in,
   * which allocates no array of all its names as `Object.keys` did on every Check.
   */
  namesMatching(filter: HeaderNameFilter): string[] | undefined {
    let found: string[] | undefined;
    const map = this.#lowerCaseMap;
    if (map) {
      for (const name in map) {
        if (Object.hasOwn(map, name) && filter.matches(name)) {
          (found ??= []).push(name);
        }
      }
      return found;
    }
    for (const name of this.#ownValues().keys()) {
      if (filter.matches(name)) {
        (found ??= []).push(name);
      }
    }
    return found;
  }

  #get(lowerCaseName: string): string | string[] | undefined {
    if (this.#lowerCaseMap) {
      // Header values are strings, so a name such as `constructor` that finds an inherited member is no header.
      const value: unknown = this.#lowerCaseMap[lowerCaseName];
      return typeof value === 'string' ? value : undefined;
    }
    return this.#values?.get(lowerCaseName);
  }

  /** Returns the map of values, copying a wrapped header map into it first. */
  #ownValues(): Map<string, string | string[]> {
    if (this.#values === undefined) {
      this.#values = new Map();
      const map = this.#lowerCaseMap;
      this.#lowerCaseMap = undefined;
      if (map) {
        for (const name of Object.keys(map)) {
          this.#values.set(name, map[name]);
        }
      }
    }
    return this.#values;
  }
}

const NO_VALUES: readonly string[] = Object.freeze([]);
