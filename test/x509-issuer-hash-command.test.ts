import { Writable } from 'node:stream';

import { expect } from 'chai';

import { issuerHashCommand } from '../src/cli/issuer-hash.js';
import { parseCertificate } from '../src/x509/index.js';
import { chainPem, TestPki, type TestCertificate } from './helpers/pki.js';

/** A stream that keeps everything written to it. */
class CapturedOutput extends Writable {
  text = '';

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.text += chunk.toString();
    callback();
  }
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new CapturedOutput();
  const err = new CapturedOutput();
  const code = await issuerHashCommand(args, out, err);
  return { code, out: out.text, err: err.text };
}

describe('issuerHashCommand', function () {
  let pki: TestPki;
  let root: TestCertificate;
  let intermediate: TestCertificate;
  let device: TestCertificate;

  before(function () {
    pki = TestPki.create();
    root = pki.rootCa('/O=Example IoT/CN=Root CA');
    intermediate = pki.intermediateCa(root, '/O=Example IoT/CN=Device CA');
    device = pki.device(intermediate, '/CN=device-0001');
  });

  after(function () {
    pki.cleanup();
  });

  it('prints the leaf issuer hash openssl prints on the first line', async function () {
    const result = await run([device.certPath]);
    expect(result.code).to.equal(0);
    expect(result.out.split('\n')[0]).to.equal(pki.opensslIssuerHash(device));
    expect(result.err).to.equal('');
  });

  it('lists each CA on the verified path and marks an appended foreign CA', async function () {
    const foreign = pki.rootCa('/O=Public/CN=Some Public Root');
    const file = pki.writeFile('chain-with-foreign.pem', chainPem(device, intermediate, root, foreign));
    const result = await run([file]);
    const lines = result.out.trimEnd().split('\n');

    expect(result.code).to.equal(0);
    expect(lines).to.have.length(5);
    expect(lines[0]).to.equal(pki.opensslIssuerHash(device));
    expect(lines[1]).to.match(/^leaf sha256=[0-9a-f]{64} /);
    expect(lines[1]).to.include('subject="CN=device-0001"');
    expect(lines[2]).to.equal(
      `ca sha256=${parseCertificate(intermediate.pem).sha256} subject_hash=${pki.opensslSubjectHash(intermediate)} ` +
        `issuer_hash=${pki.opensslIssuerHash(intermediate)} subject="O=Example IoT, CN=Device CA" (CA on verified path)`,
    );
    expect(lines[3]).to.include('subject="O=Example IoT, CN=Root CA" (CA on verified path)');
    expect(lines[4]).to.equal(
      `ignored sha256=${parseCertificate(foreign.pem).sha256} subject="O=Public, CN=Some Public Root" (not on verified path)`,
    );
  });

  it('reads a DER certificate', async function () {
    const file = pki.writeFile('device.der', parseCertificate(device.pem).der);
    const result = await run([file]);
    expect(result.code).to.equal(0);
    expect(result.out.split('\n')[0]).to.equal(pki.opensslIssuerHash(device));
  });

  it('warns when the first certificate is a CA', async function () {
    const result = await run([intermediate.certPath]);
    expect(result.code).to.equal(0);
    expect(result.err).to.include('put the device certificate first');
  });

  it('fails with 2 when FILE is missing', async function () {
    const result = await run([]);
    expect(result.code).to.equal(2);
    expect(result.err).to.include('missing argument FILE');
    expect(result.out).to.equal('');
  });

  it('fails with 2 for more than one argument', async function () {
    const result = await run([device.certPath, root.certPath]);
    expect(result.code).to.equal(2);
    expect(result.err).to.include('expected one argument, got 2');
  });

  it('fails with 2 and names an unreadable file', async function () {
    const missing = `${pki.dir}/does-not-exist.pem`;
    const result = await run([missing]);
    expect(result.code).to.equal(2);
    expect(result.err).to.include(`cannot read ${missing}`);
  });

  it('fails with 2 for a file without a certificate', async function () {
    for (const [name, contents] of [
      ['empty.pem', ''],
      ['text.pem', 'hello\n'],
      ['key.pem', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'],
    ] as const) {
      const file = pki.writeFile(name, contents);
      const result = await run([file]);
      expect(result.code, name).to.equal(2);
      expect(result.err, name).to.include(`no certificate found in ${file}`);
    }
  });

  it('fails with 2 and names a broken certificate', async function () {
    const broken = device.pem.replace(/\n[A-Za-z0-9+/]{10}/, '\nAAAAAAAAAA');
    const file = pki.writeFile('broken.pem', root.pem + broken);
    const result = await run([file]);
    expect(result.code).to.equal(2);
    expect(result.err).to.include(`${file}: certificate 2 is invalid`);
  });
});
