import { fileURLToPath } from 'node:url';
import { ConfigError } from '../config/errors.js';
import { loadConfigFile, parseConfig } from '../config/load.js';
import type { ServiceConfig } from '../config/schema.js';
import { checkCommand } from './check.js';
import { resolveConfigPath } from './config-path.js';
import { EXIT_ERROR, EXIT_OK, UsageError, type CliIo } from './io.js';
import { serveCommand } from './serve.js';
import { configValidateCommand } from './config-validate.js';
import { issuerHashCommand } from './issuer-hash.js';
import { packageVersion } from '../version.js';

const USAGE = `Usage: hawkbit-ext-authz [--config FILE] COMMAND [options]

Envoy ext_authz service that authenticates Eclipse hawkBit DDI devices.

Commands:
  serve [--workers N]        run the service (what npm start runs); N > 1 forks N worker processes
  check --path PATH ...      send one Check as Envoy would and print the decision
  issuer-hash FILE           print the OpenSSL issuer hash and CA fingerprints of a certificate
  config validate [FILE]     validate a configuration file without starting anything
  tenant set|show|list|remove ...   manage tenants in the Redis store
  target add|rotate|remove|list ... manage device tokens in the Redis store
  import FILE                load the tenants: section of a file into the Redis store
  cert pin|unpin|revoke|unrevoke|list ...  pinned CAs and revoked device certificates in the Redis store

Options:
  --config FILE   configuration file; default: $HAWKBIT_EXT_AUTHZ_CONFIG, else the bundled example
  --help          print this help, or a command's help after the command
  --version       print the version
`;

/** Usage of the commands that print their own help here rather than in their module. */
const COMMAND_USAGE: Record<string, string> = {
  serve: `Usage: hawkbit-ext-authz [--config FILE] serve [--workers N]

Runs the service: gRPC ext_authz and grpc.health.v1 on grpc.address, /healthz,
/readyz and /metrics on http.address. SIGTERM or SIGINT drain and stop it;
SIGHUP reloads the configuration file.

  --workers N   run N worker processes (1 to 256) on the same ports, supervised
                by this process, which restarts a crashed worker; default 1,
                a single process
`,
  'issuer-hash': `Usage: hawkbit-ext-authz issuer-hash FILE

Prints the issuer hash of the certificate in FILE (PEM, or DER), as
openssl x509 -issuer_hash prints it, for authentication.header.authority.
Further certificates in FILE are read as its chain (leaf first): labelled
lines follow with the SHA-256 fingerprints of the CAs on the verified path,
and the leaf's signed-part digest (tbs_sha256) for revocation.
`,
  config: `Usage: hawkbit-ext-authz config validate [FILE]

Validates a configuration file without starting anything; FILE defaults to
--config, then $HAWKBIT_EXT_AUTHZ_CONFIG, then the bundled example. Exits 0
when valid, 1 with every problem listed when not.
`,
};

type ConfiguredCommand = (args: string[], config: ServiceConfig, io: CliIo) => Promise<number>;

/** Admin commands load on use, so `serve` never loads the Redis client it may not need. */
const adminCommand =
  (name: 'tenantCommand' | 'targetCommand' | 'importCommand' | 'certCommand'): ConfiguredCommand =>
  async (args, config, io) => {
    const admin = await import('./admin/index.js');
    // `cert pin --help` and the like print the command's usage, whatever else was given.
    const wantsHelp = args.includes('--help') || args.includes('-h');
    return admin[name](wantsHelp ? ['--help'] : args, config, io);
  };

const CONFIGURED_COMMANDS: Record<string, ConfiguredCommand> = {
  serve: serveCommand,
  check: checkCommand,
  tenant: adminCommand('tenantCommand'),
  target: adminCommand('targetCommand'),
  import: adminCommand('importCommand'),
  cert: adminCommand('certCommand'),
};

/** Runs the CLI with the given arguments (without `node` and the script) and returns the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let configFlag: string | undefined;
  const rest: string[] = [];
  // --version works with every command, like --help.
  if (argv.includes('--version')) {
    io.out.write(`${packageVersion()}\n`);
    return EXIT_OK;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--config') {
      configFlag = argv[++i];
      if (!configFlag) {
        io.err.write('error: --config needs a file path\n');
        return EXIT_ERROR;
      }
    } else if (arg.startsWith('--config=')) {
      configFlag = arg.slice('--config='.length);
    } else {
      rest.push(arg);
    }
  }

  const [command, ...args] = rest;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    io.out.write(USAGE);
    return command === undefined ? EXIT_ERROR : EXIT_OK;
  }
  if (command === '--version' || command === '-v') {
    io.out.write(`${packageVersion()}\n`);
    return EXIT_OK;
  }

  try {
    const wantsHelp = args.includes('--help') || args.includes('-h');
    if (wantsHelp && COMMAND_USAGE[command] !== undefined) {
      io.out.write(COMMAND_USAGE[command]);
      return EXIT_OK;
    }
    if (command === 'issuer-hash') {
      return await issuerHashCommand(args, io.out, io.err);
    }
    if (command === 'config') {
      return await configValidateCommand(args, configFlag, io);
    }
    const run = CONFIGURED_COMMANDS[command];
    if (!run) {
      io.err.write(`error: unknown command "${command}"; run hawkbit-ext-authz --help for the list\n`);
      return EXIT_ERROR;
    }
    // Help needs no configuration, so a broken file does not hide it.
    const { path } = resolveConfigPath(configFlag, io.env);
    const config = wantsHelp ? parseConfig('', path) : loadConfigFile(path, { env: io.env });
    return await run(args, config, io);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof UsageError) {
      io.err.write(`error: ${error.message}\n`);
      return EXIT_ERROR;
    }
    if (error instanceof Error && (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err.write(`error: ${error.message}; run hawkbit-ext-authz ${command} --help\n`);
      return EXIT_ERROR;
    }
    io.err.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT_ERROR;
  }
}

const isEntryPoint = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
const isShim = process.argv[1]?.endsWith('hawkbit-ext-authz.js') || process.argv[1]?.endsWith('hawkbit-ext-authz');
if (isEntryPoint || isShim) {
  // A reader that closes early (`check ... | head -1`) is not an error of the command.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') {
      process.exit(process.exitCode ?? 0);
    }
    throw error;
  });
  const io: CliIo = { out: process.stdout, err: process.stderr, stdin: process.stdin, env: process.env };
  runCli(process.argv.slice(2), io).then(
    (code) => {
      // `serve` keeps the process alive itself; other commands end here.
      if (code !== -1) {
        process.exitCode = code;
      }
    },
    (error: unknown) => {
      process.stderr.write(`error: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exitCode = EXIT_ERROR;
    },
  );
}
