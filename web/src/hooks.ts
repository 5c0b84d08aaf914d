/** React bindings of the hub: subscriptions tied to component lifetimes, throttled renders. */

import { useEffect, useReducer, useState } from "react";
import type { ConnectionStatus, MarketHub } from "./hub";
import type { RowStore } from "./model/store";

/** The store of `topic`, subscribed while the component is mounted. */
export function useTopic<R extends object>(hub: MarketHub, topic: string): RowStore<R> {
  const store = hub.store<R>(topic);
  useEffect(() => {
    hub.retain(topic);
    return () => hub.release(topic);
  }, [hub, topic]);
  return store;
}

/**
 * Re-render when the store changes, at most once per animation frame and at most every
 * `minIntervalMs`. Returns the store's version (use it as a memo dependency).
 */
export function useStoreVersion<R extends object>(store: RowStore<R>, minIntervalMs = 0): number {
  const [, force] = useReducer((n: number) => n + 1, 0);
  useEffect(() => {
    let frame = 0;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let last = 0;
    const render = () => {
      frame = 0;
      last = performance.now();
      force();
    };
    const unsubscribe = store.subscribe(() => {
      if (frame !== 0 || timer !== null) return;
      const wait = last + minIntervalMs - performance.now();
      if (wait > 0) {
        timer = setTimeout(() => {
          timer = null;
          frame = requestAnimationFrame(render);
        }, wait);
      } else {
        frame = requestAnimationFrame(render);
      }
    });
    force(); // the store may have changed between render and subscribe
    return () => {
      unsubscribe();
      if (frame !== 0) cancelAnimationFrame(frame);
      if (timer !== null) clearTimeout(timer);
    };
  }, [store, minIntervalMs]);
  return store.version;
}

export function useConnectionStatus(hub: MarketHub): ConnectionStatus {
  const [status, setStatus] = useState(hub.status);
  useEffect(() => {
    setStatus(hub.status);
    return hub.onStatus(() => setStatus(hub.status));
  }, [hub]);
  return status;
}

/** A clock that ticks every `intervalMs` while `active`. */
export function useNow(intervalMs: number, active = true): number {
  const [now, setNow] = useState(() => performance.now());
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => setNow(performance.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs, active]);
  return now;
}
