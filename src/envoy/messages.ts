/**
 * Shapes of the Envoy messages as @grpc/proto-loader decodes and encodes them
 * (`keepCase: true`, enums as numbers, bytes as Buffer). Only the fields this
 * service reads or writes are listed.
 */

export interface HeaderValueMessage {
  key?: string;
  value?: string;
  raw_value?: Buffer | Uint8Array;
}

export interface CheckRequestMessage {
  attributes?: {
    source?: {
      address?: { socket_address?: { address?: string; port_value?: number } };
      principal?: string;
      certificate?: string;
    };
    request?: {
      http?: {
        id?: string;
        method?: string;
        headers?: Record<string, string>;
        header_map?: { headers?: HeaderValueMessage[] };
        path?: string;
        host?: string;
      };
    };
  };
}

/** `HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD` as a number, the form decoded responses have. */
export const OVERWRITE_IF_EXISTS_OR_ADD = 2;

export interface HeaderValueOptionMessage {
  header: { key: string; value: string };
  append: { value: boolean };
  append_action: typeof OVERWRITE_IF_EXISTS_OR_ADD;
}

/** google.protobuf.Struct in proto-loader's object form. */
export interface StructMessage {
  fields: Record<string, { stringValue: string }>;
}

export interface CheckResponseMessage {
  status: { code: number; message?: string };
  ok_response?: {
    headers: HeaderValueOptionMessage[];
    /** Read-only, because allow responses share their empty and `authorization`-only lists. */
    headers_to_remove: readonly string[];
  };
  denied_response?: {
    status: { code: number };
    headers: HeaderValueOptionMessage[];
    body: string;
  };
  dynamic_metadata?: StructMessage;
}
