import { expect } from 'chai';

import { ClockMap } from '../src/x509/clock-map.js';

describe('ClockMap', function () {
  it('evicts the unused entry', function () {
    const map = new ClockMap<string, number>(2);
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
    const map = new ClockMap<string, number>(2);
    map.set('a', 1);
    map.set('a', 2);
    expect(map.size).to.equal(1);
    expect(map.get('a')).to.equal(2);
  });

  it('gives a used entry a second chance', function () {
    const map = new ClockMap<string, number>(3);
    map.set('a', 1);
    map.set('b', 2);
    map.set('c', 3);
    expect(map.get('a')).to.equal(1);
    // 'a' was used, so it moves to the newest end and 'b' goes. Then 'c' goes.
    map.set('d', 4);
    map.set('e', 5);

    expect(map.size).to.equal(3);
    expect(map.get('b')).to.equal(undefined);
    expect(map.get('c')).to.equal(undefined);
    expect(map.get('a')).to.equal(1);
    expect(map.get('d')).to.equal(4);
    expect(map.get('e')).to.equal(5);
  });

  it('evicts when every entry is used', function () {
    const map = new ClockMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    map.get('a');
    map.get('b');
    map.set('c', 3);

    expect(map.size).to.equal(2);
    expect(map.get('a')).to.equal(undefined);
    expect(map.get('b')).to.equal(2);
    expect(map.get('c')).to.equal(3);
  });

  it('never evicts an entry used often', function () {
    const map = new ClockMap<string, number>(8);
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
    const map = new ClockMap<string, number>(2);
    map.set('a', 1);
    map.clear();
    expect(map.size).to.equal(0);
    expect(map.get('a')).to.equal(undefined);
  });

  it('rejects a size that is not a positive integer', function () {
    expect(() => new ClockMap(0)).to.throw(RangeError, /maxEntries/);
    expect(() => new ClockMap(1.5)).to.throw(RangeError, /maxEntries/);
  });
});
