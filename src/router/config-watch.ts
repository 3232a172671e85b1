/**
 * Watches the config file for changes, designed for Kubernetes ConfigMap volumes: kubelet updates a
 * ConfigMap by writing a new timestamped directory and atomically renaming the `..data` symlink, so the
 * file's path stays the same while its inode changes and a watch on the file itself goes silent. We
 * therefore watch the file's *directory* (inotify sees the rename), re-read the path (following symlinks)
 * on every event, debounced, and also poll on an interval as a safety net. A reload is triggered only when
 * the content differs from the last content seen.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface ConfigWatcherOptions {
  /** Called with the new file content when it changed (also for content that will turn out invalid). */
  onChange: (text: string) => void;
  /** Called when the file cannot be read (once per distinct error message). */
  onReadError: (err: Error) => void;
  /** Fallback poll interval; 0 disables polling. */
  pollMs?: number;
  debounceMs?: number;
}

export class ConfigFileWatcher {
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private lastText: string | undefined;
  private lastError: string | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(
    readonly path: string,
    private readonly o: ConfigWatcherOptions,
  ) {}

  /** Marks `text` as the content already applied (the initial load). */
  seed(text: string): void {
    this.lastText = text;
  }

  start(): void {
    try {
      this.watcher = watch(dirname(this.path), { persistent: false }, () => this.schedule());
      this.watcher.on('error', () => undefined); // the directory may vanish briefly; polling covers it
    } catch {
      this.watcher = undefined;
    }
    const pollMs = this.o.pollMs ?? 2000;
    if (pollMs > 0) {
      this.poll = setInterval(() => void this.check(), pollMs);
      this.poll.unref();
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.check(), this.o.debounceMs ?? 50);
    this.debounce.unref();
  }

  /** Reads the file now and reports a change; concurrent calls coalesce. */
  async check(): Promise<void> {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        let text: string;
        try {
          text = await readFile(this.path, 'utf8');
        } catch (err) {
          const msg = (err as Error).message;
          if (msg !== this.lastError) {
            this.lastError = msg;
            this.o.onReadError(err as Error);
          }
          continue;
        }
        this.lastError = undefined;
        if (text === this.lastText || this.stopped) continue;
        this.lastText = text;
        this.o.onChange(text);
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    clearInterval(this.poll);
    clearTimeout(this.debounce);
  }
}
