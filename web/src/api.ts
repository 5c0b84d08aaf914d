/** REST calls of DESIGN.md §5 and the optional API key (X-Api-Key; access_token for the hub). */

import type { UnderlyingRow } from "./model/types";

const KEY_STORAGE = "flashalpha.apiKey";

/**
 * The API key, when the daemon requires one: `?api_key=...` on any page stores it in this
 * browser (and is removed from the address bar); later visits reuse it.
 */
export function apiKey(): string | null {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get("api_key");
  if (fromUrl) {
    window.localStorage.setItem(KEY_STORAGE, fromUrl);
    url.searchParams.delete("api_key");
    window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
    return fromUrl;
  }
  return window.localStorage.getItem(KEY_STORAGE);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function getJson<T>(path: string, key: string | null): Promise<T> {
  const response = await fetch(path, {
    headers: key ? { "X-Api-Key": key, Accept: "application/json" } : { Accept: "application/json" },
  });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = body.detail ?? body.error ?? JSON.stringify(body);
    } catch {
      // not JSON: keep the status text
    }
    throw new ApiError(response.status, `${path}: ${response.status} ${detail}`);
  }
  return (await response.json()) as T;
}

export function fetchUnderlyings(key: string | null): Promise<UnderlyingRow[]> {
  return getJson<UnderlyingRow[]>("/api/v1/underlyings", key);
}
