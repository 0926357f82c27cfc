import { EventEmitter } from 'eventemitter3';

type Listener = (...args: unknown[]) => unknown;

/**
 * A typed event emitter on eventemitter3 whose listeners cannot hurt the emitter: each is
 * wrapped at registration, so one that throws or rejects is reported to
 * {@link SafeEmitter.onListenerError} and the other listeners still run. `once`, `off` and
 * `listenerCount` behave as eventemitter3's.
 */
export class SafeEmitter<Events extends { [K in keyof Events]: unknown[] }> {
  private readonly emitter = new EventEmitter();
  private readonly wrapped = new Map<keyof Events, Map<Listener, Listener[]>>();

  /** Adds a listener. */
  on<K extends keyof Events & string>(event: K, listener: (...args: Events[K]) => unknown): this {
    this.emitter.on(event, this.wrap(event, listener as Listener, false));
    return this;
  }

  /** Adds a listener that is removed after its first call. */
  once<K extends keyof Events & string>(event: K, listener: (...args: Events[K]) => unknown): this {
    this.emitter.once(event, this.wrap(event, listener as Listener, true));
    return this;
  }

  /** Removes one registration of `listener`, or every listener of `event` when omitted. */
  off<K extends keyof Events & string>(event: K, listener?: (...args: Events[K]) => unknown): this {
    if (!listener) {
      this.wrapped.delete(event);
      this.emitter.removeAllListeners(event);
      return this;
    }
    const byListener = this.wrapped.get(event);
    const wrappers = byListener?.get(listener as Listener);
    const wrapper = wrappers?.pop();
    if (wrapper) {
      if (wrappers?.length === 0) byListener?.delete(listener as Listener);
      this.emitter.off(event, wrapper);
    }
    return this;
  }

  /** Number of listeners of `event`. */
  listenerCount(event: keyof Events & string): number {
    return this.emitter.listenerCount(event);
  }

  /** Calls every listener of `event`; never throws. */
  protected emit<K extends keyof Events & string>(event: K, ...args: Events[K]): void {
    this.emitter.emit(event, ...args);
  }

  /** Called with whatever a listener threw or rejected with. */
  protected onListenerError(event: string, error: unknown): void {
    void event;
    void error;
  }

  private wrap(event: keyof Events & string, listener: Listener, once: boolean): Listener {
    const report = (error: unknown) => {
      try {
        this.onListenerError(event, error);
      } catch {
        // The error reporter itself failed; nothing safer is left to do.
      }
    };
    const wrapper: Listener = (...args) => {
      if (once) this.forget(event, listener, wrapper);
      try {
        const result = listener(...args);
        if (result instanceof Promise) result.catch(report);
      } catch (error) {
        report(error);
      }
    };
    let byListener = this.wrapped.get(event);
    if (!byListener) this.wrapped.set(event, (byListener = new Map<Listener, Listener[]>()));
    const wrappers = byListener.get(listener) ?? [];
    wrappers.push(wrapper);
    byListener.set(listener, wrappers);
    return wrapper;
  }

  private forget(event: keyof Events, listener: Listener, wrapper: Listener): void {
    const byListener = this.wrapped.get(event);
    const wrappers = byListener?.get(listener);
    const at = wrappers?.indexOf(wrapper) ?? -1;
    if (wrappers && at >= 0) wrappers.splice(at, 1);
    if (wrappers?.length === 0) byListener?.delete(listener);
  }
}
