import { expect } from 'chai';
import { BoundedTtlCache } from '../src/store/cache.js';

describe('bounded TTL cache', () => {
  function clockedCache(maxEntries: number, ttlMs: number): { cache: BoundedTtlCache<string>; advance: (ms: number) => void } {
    let now = 1_000;
    return { cache: new BoundedTtlCache<string>(maxEntries, ttlMs, () => now), advance: (ms) => (now += ms) };
  }

  it('returns a stored value with its time', () => {
    const { cache } = clockedCache(10, 100);
    cache.set('a', 'one');
    expect(cache.get('a')).to.deep.equal({ value: 'one', storedAt: 1_000, touchedAt: 1_000 });
  });

  it('drops an entry at its TTL', () => {
    const { cache, advance } = clockedCache(10, 100);
    cache.set('a', 'one');
    advance(99);
    expect(cache.get('a')?.value).to.equal('one');
    advance(1);
    expect(cache.get('a')).to.equal(undefined);
    expect(cache.size).to.equal(0);
  });

  it('evicts the least recently used entry when full', () => {
    const { cache, advance } = clockedCache(2, 10_000);
    cache.set('a', 'one');
    cache.set('b', 'two');
    advance(1_000);
    expect(cache.get('a')?.value).to.equal('one');
    cache.set('c', 'three');
    expect(cache.size).to.equal(2);
    expect(cache.get('b')).to.equal(undefined);
    expect(cache.get('a')?.value).to.equal('one');
    expect(cache.get('c')?.value).to.equal('three');
  });

  it('moves a hit at most once a second', () => {
    const { cache, advance } = clockedCache(2, 10_000);
    cache.set('a', 'one');
    cache.set('b', 'two');
    advance(999);
    expect(cache.get('a')?.value).to.equal('one');
    cache.set('c', 'three');
    expect(cache.get('a'), 'a hit within the interval kept its place').to.equal(undefined);
    expect(cache.get('b')?.value).to.equal('two');
  });

  it('stores nothing with TTL 0', () => {
    const { cache } = clockedCache(10, 0);
    cache.set('a', 'one');
    expect(cache.get('a')).to.equal(undefined);
    expect(cache.size).to.equal(0);
  });

  it('deletes and clears', () => {
    const { cache } = clockedCache(10, 100);
    cache.set('a', 'one');
    cache.set('b', 'two');
    cache.delete('a');
    expect(cache.get('a')).to.equal(undefined);
    cache.clear();
    expect(cache.size).to.equal(0);
  });

  it('rejects invalid bounds', () => {
    expect(() => new BoundedTtlCache(0, 100)).to.throw(RangeError, /maxEntries/);
    expect(() => new BoundedTtlCache(10, -1)).to.throw(RangeError, /ttlMs/);
  });
});
