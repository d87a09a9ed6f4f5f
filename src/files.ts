/**
 * Reading and preparing the files catalog-dns is pointed at, without letting an odd one wedge the
 * process: a FIFO, a device, a directory, a huge file, a directory under /proc.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, mkdirSync, openSync, statSync, unlinkSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { CatalogDnsError } from './errors.js';

/** What a file system object is, for messages: "a FIFO", "a directory", ... */
export function fileKind(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

export interface ReadFile {
  readonly data: Buffer;
  /** fstat of the descriptor the data came from. */
  readonly stats: Stats;
}

/**
 * Reads a regular file of at most `maxBytes`. Anything else is refused before a byte is read:
 * the file is opened with O_NONBLOCK (opening a FIFO for reading would otherwise wait for a writer,
 * holding a libuv thread, and with it every later file read and the process exit, for as long as
 * none comes; O_NONBLOCK does nothing to a regular file), then the descriptor is checked with fstat.
 * Errors are CatalogDnsError CDNS_ERR_CATALOG_READ `cannot read <what> <path>: <reason>`, with the
 * system error (its `code`, e.g. ENOENT) as `cause` when there is one.
 */
export async function readRegularFile(path: string, opts: { maxBytes: number; what?: string }): Promise<ReadFile> {
  const what = opts.what ?? 'file';
  const fail = (reason: string, cause?: unknown) =>
    new CatalogDnsError('CDNS_ERR_CATALOG_READ', `cannot read ${what} ${path}: ${reason}`, cause === undefined ? undefined : { cause });
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw fail((e as Error).message, e);
  }
  try {
    const stats = await fh.stat();
    if (!stats.isFile()) throw fail(`it is ${fileKind(stats)}, not a regular file`);
    if (stats.size > opts.maxBytes) throw fail(`it is ${stats.size} bytes, over the ${opts.maxBytes}-byte limit`);
    // One byte more than fstat said, to notice a file that grew; grows up to the limit + 1.
    let buf = Buffer.allocUnsafe(stats.size + 1);
    let n = 0;
    for (;;) {
      if (n > opts.maxBytes) throw fail(`it grew over the ${opts.maxBytes}-byte limit while being read`);
      if (n === buf.length) {
        const next = Buffer.allocUnsafe(Math.min(buf.length * 2, opts.maxBytes + 1));
        buf.copy(next, 0, 0, n);
        buf = next;
      }
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return { data: buf.subarray(0, n), stats };
  } catch (e) {
    if (e instanceof CatalogDnsError) throw e;
    throw fail((e as Error).message, e);
  } finally {
    await fh.close().catch(() => {});
  }
}

/**
 * Makes sure `dir` is a directory this process can create files in, creating it (and missing
 * parents) if needed. Throws an Error whose message is one line naming the path and the reason.
 *
 * Not `mkdirSync(dir, { recursive: true })`: under /proc it loops forever (mkdir says ENOENT although
 * the parent exists, and Node retries the parent, which exists, then the child again).
 */
export function ensureWritableDir(dir: string): void {
  const abs = resolve(dir);
  const sysMessage = (e: unknown) => (e as Error).message;
  // Walk up to the first component that exists (bounded by the path's depth).
  const missing: string[] = [];
  for (let p = abs; ; p = dirname(p)) {
    let st: Stats;
    try {
      st = statSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot use ${abs}: ${sysMessage(e)}`, { cause: e });
      missing.unshift(p);
      if (dirname(p) === p) break;
      continue;
    }
    if (!st.isDirectory()) throw new Error(p === abs ? `${abs} is ${fileKind(st)}, not a directory` : `cannot create ${abs}: ${p} is ${fileKind(st)}, not a directory`);
    break;
  }
  for (const p of missing) {
    try {
      mkdirSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot create ${abs}: ${sysMessage(e)}`, { cause: e });
    }
  }
  const st = statSync(abs, { throwIfNoEntry: false });
  if (!st?.isDirectory()) throw new Error(`${abs} is ${st ? fileKind(st) : 'gone'}, not a directory`);
  // access(W_OK) says yes to root on a read-only directory and on /proc; creating a file is the real test.
  const probe = join(abs, `.catalog-dns-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    closeSync(openSync(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NONBLOCK, 0o600));
  } catch (e) {
    throw new Error(`${abs} is not writable: ${sysMessage(e)}`, { cause: e });
  }
  try {
    unlinkSync(probe);
  } catch {
    // an empty file left behind is harmless
  }
}

/**
 * Checks that `path`, if it exists, is a regular file (a state file read and written synchronously:
 * a FIFO there would block the whole process). Returns the reason when it is not.
 */
export function notRegularFile(path: string): string | null {
  const st = statSync(path, { throwIfNoEntry: false });
  return st && !st.isFile() ? `${path} is ${fileKind(st)}, not a regular file` : null;
}
