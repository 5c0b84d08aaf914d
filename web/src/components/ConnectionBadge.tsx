import type { MarketHub } from "../hub";
import { useConnectionStatus } from "../hooks";

const LABELS = {
  connecting: "Connecting",
  connected: "Live",
  reconnecting: "Reconnecting",
  disconnected: "Disconnected",
} as const;

/** Connection state of the hub: green live, amber (re)connecting, red disconnected. */
export function ConnectionBadge({ hub }: { hub: MarketHub }) {
  const status = useConnectionStatus(hub);
  return (
    <div
      className={`connection connection-${status}`}
      data-testid="connection-status"
      data-status={status}
      data-protocol={hub.protocol}
      title={hub.lastError ?? `hub ${status} (${hub.protocol})`}
    >
      <span className="connection-dot" />
      {LABELS[status]}
    </div>
  );
}
