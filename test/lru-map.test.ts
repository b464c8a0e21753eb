import { expect } from 'chai';

import { LruMap } from '../src/x509/lru-map.js';

describe('LruMap', function () {
  it('evicts the least recently used entry', function () {
    const map = new LruMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    expect(map.get('a')).to.equal(1);
    map.set('c', 3);

    expect(map.size).to.equal(2);
    expect(map.get('a')).to.equal(1);
    expect(map.get('b')).to.equal(undefined);
    expect(map.get('c')).to.equal(3);
  });

  it('replaces the value of a stored key', function () {
    const map = new LruMap<string, number>(2);
    map.set('a', 1);
    map.set('a', 2);
    expect(map.size).to.equal(1);
    expect(map.get('a')).to.equal(2);
  });

  it('moves an entry after half its size of insertions', function () {
    const map = new LruMap<string, number>(4);
    map.set('a', 1);
    map.set('b', 2);
    map.set('c', 3);
    // One insertion since 'b': it is not moved and stays second oldest.
    expect(map.get('b')).to.equal(2);
    map.set('d', 4);
    // Three insertions since 'a': it moves to the recently used end.
    expect(map.get('a')).to.equal(1);
    map.set('e', 5);

    expect(map.get('b')).to.equal(undefined);
    expect(map.get('a')).to.equal(1);
    expect(map.get('c')).to.equal(3);
  });

  it('never evicts an entry used often', function () {
    const map = new LruMap<string, number>(8);
    map.set('hot', 0);
    for (let index = 1; index <= 200; index++) {
      map.set(`cold-${index}`, index);
      if (index % 4 === 0) {
        expect(map.get('hot'), `after ${index} insertions`).to.equal(0);
      }
    }
    expect(map.size).to.equal(8);
    expect(map.get('cold-1')).to.equal(undefined);
  });

  it('clears every entry', function () {
    const map = new LruMap<string, number>(2);
    map.set('a', 1);
    map.clear();
    expect(map.size).to.equal(0);
    expect(map.get('a')).to.equal(undefined);
  });

  it('rejects a size that is not a positive integer', function () {
    expect(() => new LruMap(0)).to.throw(RangeError, /maxEntries/);
    expect(() => new LruMap(1.5)).to.throw(RangeError, /maxEntries/);
  });
});
