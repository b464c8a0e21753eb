import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import type { ServiceConfig } from '../config/schema.js';
import { encodePemLikeEnvoy, pemBlocks, xfccElementLikeEnvoy } from '../envoy/envoy-encoding.js';
import type { CheckRequestMessage, CheckResponseMessage } from '../envoy/messages.js';
import { authorizationService } from '../envoy/proto.js';
import { EXIT_FAILURE, EXIT_OK, UsageError, type CliIo } from './io.js';

export const CHECK_USAGE = `Usage: hawkbit-ext-authz check --path PATH [options]

Sends one Check to the service as Envoy would and prints the decision.
Exits 0 on allow, 1 on deny, 2 on error.

Options:
  --path PATH          request path, for example /DEFAULT/controller/v1/device-01
  --header "N: V"      request header; repeat for more (repeated names are comma-joined, as Envoy does)
  --method M           HTTP method (default GET)
  --address HOST:PORT  service address (default: grpc.address of the configuration)
  --source IP          downstream peer address (default 127.0.0.1)
  --cert FILE          client certificate (PEM), sent as Envoy's source.certificate
  --chain FILE         CA certificates of the client's chain (PEM), sent in x-forwarded-client-cert
  --xfcc               send the certificate only in x-forwarded-client-cert, not as source.certificate
  --timeout MS         deadline of the call in milliseconds (default 2000)
  --json               print the full CheckResponse as JSON
`;

/** Builds the CheckRequest Envoy would send for these options. */
export function buildCheckRequest(options: {
  path: string;
  method: string;
  headers: readonly string[];
  source: string;
  certPem?: string;
  chainPem?: string;
  xfccOnly: boolean;
}): CheckRequestMessage {
  const headers: Record<string, string> = {
    ':path': options.path,
    ':method': options.method,
    ':authority': 'hawkbit',
    ':scheme': 'https',
    'x-request-id': randomUUID(),
  };
  for (const line of options.headers) {
    const colon = line.indexOf(':');
    if (colon <= 0) {
      throw new UsageError(`--header "${line}" is not "Name: value"; write for example --header "Authorization: TargetToken abc"`);
    }
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers && !name.startsWith(':') ? `${headers[name]},${value}` : value;
  }

  let certificate = '';
  if (options.certPem !== undefined) {
    const leaf = pemBlocks(options.certPem)[0];
    const chain = options.chainPem !== undefined ? pemBlocks(options.chainPem) : [];
    if (!options.xfccOnly) {
      certificate = encodePemLikeEnvoy(leaf);
    }
    if (options.xfccOnly || chain.length > 0) {
      headers['x-forwarded-client-cert'] = xfccElementLikeEnvoy(leaf, chain);
    }
  }

  return {
    attributes: {
      source: { address: { socket_address: { address: options.source, port_value: 40000 } }, certificate },
      request: { http: { method: options.method, path: options.path, host: 'hawkbit', headers } },
    },
  };
}

export async function checkCommand(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      path: { type: 'string' },
      header: { type: 'string', multiple: true },
      method: { type: 'string' },
      address: { type: 'string' },
      source: { type: 'string' },
      cert: { type: 'string' },
      chain: { type: 'string' },
      xfcc: { type: 'boolean' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    io.out.write(CHECK_USAGE);
    return EXIT_OK;
  }
  if (!values.path) {
    throw new UsageError('--path is required, for example --path /DEFAULT/controller/v1/device-01');
  }
  const timeoutMs = values.timeout === undefined ? 2000 : Number(values.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new UsageError(`--timeout "${values.timeout}" must be a positive number of milliseconds`);
  }
  const certPem = values.cert === undefined ? undefined : readPem(values.cert, '--cert');
  const chainPem = values.chain === undefined ? undefined : readPem(values.chain, '--chain');
  if (chainPem !== undefined && certPem === undefined) {
    throw new UsageError('--chain needs --cert: give the client certificate too');
  }

  const request = buildCheckRequest({
    path: values.path,
    method: values.method ?? 'GET',
    headers: values.header ?? [],
    source: values.source ?? '127.0.0.1',
    certPem,
    chainPem,
    xfccOnly: values.xfcc ?? false,
  });
  const address = values.address ?? config.grpc.address;
  const response = await sendCheck(address, request, timeoutMs);
  printResponse(response, values.json ?? false, io);
  return response.status?.code === 0 ? EXIT_OK : EXIT_FAILURE;
}

function readPem(path: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`${flag} ${path}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  if (pemBlocks(text).length === 0) {
    throw new UsageError(`${flag} ${path}: no "-----BEGIN CERTIFICATE-----" block found; give a PEM certificate file`);
  }
  return text;
}

/** Sends one Check over a fresh insecure channel. */
export function sendCheck(address: string, request: CheckRequestMessage, timeoutMs: number): Promise<CheckResponseMessage> {
  const Client = authorizationService();
  const client = new Client(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.Check(request, { deadline: Date.now() + timeoutMs }, (error: grpc.ServiceError | null, response: CheckResponseMessage) => {
      client.close();
      if (error) {
        reject(new Error(`Check to ${address} failed: ${error.details || error.message}; is the service running there?`));
      } else {
        resolve(response);
      }
    });
  });
}

function printResponse(response: CheckResponseMessage, json: boolean, io: CliIo): void {
  if (json) {
    io.out.write(`${JSON.stringify(response, null, 2)}\n`);
    return;
  }
  const code = response.status?.code ?? 0;
  if (code === 0) {
    io.out.write('decision: allow\nhttp status: 200\n');
    for (const option of response.ok_response?.headers ?? []) {
      io.out.write(`set header: ${option.header.key}: ${option.header.value}\n`);
    }
    for (const name of response.ok_response?.headers_to_remove ?? []) {
      io.out.write(`remove header: ${name}\n`);
    }
  } else {
    io.out.write(`decision: deny\nhttp status: ${response.denied_response?.status?.code ?? 403}\ngrpc code: ${code}\n`);
  }
}
