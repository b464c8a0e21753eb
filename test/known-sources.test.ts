import { expect } from 'chai';
import { KnownSourceTable } from '../src/auth/known-sources.js';
import { targetOfKey } from '../src/auth/failure-limiter.js';

describe('known source table', () => {
  it('finds a key by counter and by target', () => {
    const table = new KnownSourceTable();
    const target = table.add('target:7:DEFAULT:device-01', 'DEFAULT', 'device-01', 10);
    const gateway = table.add('gateway:DEFAULT', 'DEFAULT', undefined, 10);

    expect(table.find('DEFAULT', 'device-01')).to.equal(target);
    expect(table.find('DEFAULT', undefined)).to.equal(gateway);
    expect(table.get('target:7:DEFAULT:device-01')).to.equal(target);
    expect(table.get('gateway:DEFAULT')).to.equal(gateway);
    expect(table.find('DEFAULT', 'device-02')).to.equal(undefined);
    expect(table.find('OTHER', undefined)).to.equal(undefined);
    expect(table.size).to.equal(2);
  });

  it('evicts the least recently used key from both lookups', () => {
    const table = new KnownSourceTable();
    const first = table.add('target:1:A:one', 'A', 'one', 2);
    table.add('target:1:A:two', 'A', 'two', 2);
    table.touch(first);
    table.add('gateway:A', 'A', undefined, 2);

    expect(table.size).to.equal(2);
    expect(table.find('A', 'two')).to.equal(undefined);
    expect(table.get('target:1:A:two')).to.equal(undefined);
    expect(table.find('A', 'one')).to.equal(first);
    expect([...table.keys()].map((key) => key.counter)).to.deep.equal(['target:1:A:one', 'gateway:A']);
  });

  it('deletes and trims keys', () => {
    const table = new KnownSourceTable();
    const idOne = table.add('target:1:A:one', 'A', 'one', 10);
    table.add('target:1:B:two', 'B', 'two', 10);
    table.add('gateway:B', 'B', undefined, 10);

    table.delete(idOne);
    expect(table.find('A', 'one')).to.equal(undefined);
    expect(table.size).to.equal(2);

    table.trim(1);
    expect(table.find('B', 'two')).to.equal(undefined);
    expect(table.find('B', undefined)?.counter).to.equal('gateway:B');
    expect(table.size).to.equal(1);
  });

  it('replaces a key added twice', () => {
    const table = new KnownSourceTable();
    const old = table.add('target:1:A:one', 'A', 'one', 10);
    const replacement = table.add('target:1:A:one', 'A', 'one', 10);

    expect(replacement).to.not.equal(old);
    expect(table.find('A', 'one')).to.equal(replacement);
    table.delete(old);
    expect(table.find('A', 'one')).to.equal(replacement);
    expect(table.size).to.equal(1);
  });
});

describe('target of a counter key', () => {
  it('reads target and gateway keys', () => {
    expect(targetOfKey('target:7:DEFAULT:device-01')).to.deep.equal({ tenantKey: 'DEFAULT', controllerId: 'device-01' });
    expect(targetOfKey('gateway:DEFAULT')).to.deep.equal({ tenantKey: 'DEFAULT', controllerId: undefined });
  });

  it('reads colons in tenant and id', () => {
    expect(targetOfKey('target:3:A:B:c:d')).to.deep.equal({ tenantKey: 'A:B', controllerId: 'c:d' });
    expect(targetOfKey('gateway:A:B')).to.deep.equal({ tenantKey: 'A:B', controllerId: undefined });
  });

  it('rejects other counter keys', () => {
    for (const counter of ['source:192.0.2.10', 'target:', 'target:x:A:b', 'target:07:DEFAULT:device-01', 'target:9:DEFAULT:device-01', 'target:2:A']) {
      expect(targetOfKey(counter), counter).to.equal(undefined);
    }
  });
});
