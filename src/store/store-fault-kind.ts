// The three ways the database's surroundings make writes fail, shared by both stores: another
// process holds the lock, the disk is full, or the database cannot be used. Each store maps its
// own errors onto them; the catalog errors made of them map back here.
import { KeyholdError } from '../errors.js';

/** How a store fault affects writes: another process holds the lock, the disk is full, or the files cannot be used. */
export type StoreFaultKind = 'busy' | 'full' | 'failing';

/** The kind of a catalog error a store made of a fault (KH_ERR_STORE_BUSY / _FULL / _FAILED), undefined for any other error. */
export function catalogFaultKind(err: KeyholdError): StoreFaultKind | undefined {
  return err.code === 'KH_ERR_STORE_BUSY'
    ? 'busy'
    : err.code === 'KH_ERR_STORE_FULL'
      ? 'full'
      : err.code === 'KH_ERR_STORE_FAILED'
        ? 'failing'
        : undefined;
}
