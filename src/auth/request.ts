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

/**
 * Request headers by lower-case name. Each name keeps every value it arrived
 * with: Envoy's `headers` map gives one comma-joined value, its `header_map`
 * one entry per header line.
 */
export class RequestHeaders {
  /** One value as a string, more than one as an array, so the usual single header costs no array. */
  readonly #values = new Map<string, string | string[]>();

  add(name: string, value: string): void {
    const key = name.toLowerCase();
    const existing = this.#values.get(key);
    if (existing === undefined) {
      this.#values.set(key, value);
    } else if (typeof existing === 'string') {
      this.#values.set(key, [existing, value]);
    } else {
      existing.push(value);
    }
  }

  /** Returns all values of a header, in arrival order, or an empty list when absent. */
  all(name: string): readonly string[] {
    const values = this.#values.get(name.toLowerCase());
    if (values === undefined) {
      return NO_VALUES;
    }
    return typeof values === 'string' ? [values] : values;
  }

  /** Returns the first value of a header, or undefined when absent. */
  first(name: string): string | undefined {
    const values = this.#values.get(name.toLowerCase());
    return typeof values === 'string' || values === undefined ? values : values[0];
  }

  /** Returns the single value of a header, undefined when absent, or `null` when the header arrived more than once. */
  single(name: string): string | undefined | null {
    const values = this.#values.get(name.toLowerCase());
    if (typeof values === 'string' || values === undefined) {
      return values;
    }
    return values.length === 1 ? values[0] : null;
  }

  has(name: string): boolean {
    return this.#values.has(name.toLowerCase());
  }

  names(): IterableIterator<string> {
    return this.#values.keys();
  }
}

const NO_VALUES: readonly string[] = Object.freeze([]);
