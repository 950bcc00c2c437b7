/** A cache store whose reads throw where they stand, as a defect in an embedded store would. */
import { CacheStoreError, type CacheStore } from '../../src/cache/store.js';

export class ThrowingStore implements CacheStore {
  readonly label = 'memory';
  reads = 0;
  get(): Buffer | undefined {
    this.reads++;
    throw new Error('the store is broken');
  }
  set(): Promise<void> {
    return Promise.reject(new CacheStoreError('set', new Error('the store is broken')));
  }
  async delete(): Promise<void> {}
  ping(): boolean {
    return true;
  }
  isUp(): boolean {
    return true;
  }
  async close(): Promise<void> {}
}
