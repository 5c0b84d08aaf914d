/**
 * The chain grid: calls | strike | puts, one line per strike, virtualized (only the visible
 * lines are in the DOM). Cells whose value changed in the last FLASH_MS show green (up) or
 * red (down); in-the-money sides are shaded and the spot is drawn as a rule between strikes.
 */

import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useRef } from "react";
import { useNow } from "../hooks";
import { atTheMoney, type ChainLine, spotBoundary } from "../model/chain";
import { formatCount, formatFixed, formatStrike, formatVol } from "../model/format";
import { flashDirection, type RowStore } from "../model/store";
import type { ContractRow } from "../model/types";

const ROW_HEIGHT = 21;
const FLASH_MS = 600;

type Field = keyof ContractRow & string;

interface Column {
  field: Field;
  label: string;
  /** Header tooltip: what the number is, in which unit. */
  title: string;
  format: (value: number | null | undefined) => string;
  className?: string;
}

const per = (scale: number, digits: number) => (v: number | null | undefined) =>
  formatFixed(typeof v === "number" ? v * scale : v, digits);

/**
 * Put-side order; the call side mirrors it so that bid and ask sit next to the strike.
 * The state holds vega per 1.00 of vol and theta per year; traders read vega per vol point
 * and theta per day.
 */
const COLUMNS: readonly Column[] = [
  { field: "bid", label: "Bid", title: "Bid, $", format: per(1, 2), className: "price" },
  { field: "ask", label: "Ask", title: "Ask, $", format: per(1, 2), className: "price" },
  { field: "iv", label: "IV %", title: "Implied vol (mid), %", format: formatVol, className: "vol" },
  { field: "delta", label: "Delta", title: "Delta per $1 of spot", format: per(1, 3) },
  { field: "gamma", label: "Gamma", title: "Gamma per $1 of spot", format: per(1, 4) },
  { field: "vega", label: "Vega", title: "Vega, $ per vol point", format: per(0.01, 3) },
  { field: "theta", label: "Theta", title: "Theta, $ per calendar day", format: per(1 / 365, 3) },
  { field: "volume", label: "Volume", title: "Contracts traded today", format: formatCount, className: "count" },
  { field: "open_interest", label: "OI", title: "Open interest", format: formatCount, className: "count" },
];
const CALL_COLUMNS = [...COLUMNS].reverse();

interface ChainGridProps {
  lines: readonly ChainLine[];
  store: RowStore<ContractRow>;
  spot: number | null;
  /** Changes when the grid shows another chain: scrolls the at-the-money line into view. */
  chainKey: string;
}

export function ChainGrid({ lines, store, spot, chainKey }: ChainGridProps) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: lines.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 8,
  });
  const now = useNow(200);
  const boundary = spotBoundary(lines, spot);
  const atm = atTheMoney(lines, spot);

  const centered = useRef<string | null>(null);
  useEffect(() => {
    if (centered.current === chainKey || atm < 0) return;
    centered.current = chainKey;
    virtualizer.scrollToIndex(atm, { align: "center" });
  }, [chainKey, atm, virtualizer]);

  return (
    <div className="grid" role="table" aria-label="Option chain">
      <div className="grid-head" role="rowgroup">
        <div className="grid-groups">
          <div className="group-calls">Calls</div>
          <div className="group-strike" />
          <div className="group-puts">Puts</div>
        </div>
        <div className="grid-row grid-labels" role="row">
          {CALL_COLUMNS.map((c) => (
            <div key={`c-${c.field}`} role="columnheader" className="cell" title={c.title}>
              {c.label}
            </div>
          ))}
          <div role="columnheader" className="cell strike">
            Strike
          </div>
          {COLUMNS.map((c) => (
            <div key={`p-${c.field}`} role="columnheader" className="cell" title={c.title}>
              {c.label}
            </div>
          ))}
        </div>
      </div>
      <div className="grid-body" ref={scrollRef} role="rowgroup" data-testid="chain-body">
        <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
          {virtualizer.getVirtualItems().map((item) => {
            const line = lines[item.index];
            const call = line.call ? store.rows.get(line.call) : undefined;
            const put = line.put ? store.rows.get(line.put) : undefined;
            const callChanges = line.call ? store.changes.get(line.call) : undefined;
            const putChanges = line.put ? store.changes.get(line.put) : undefined;
            const callItm = spot !== null && line.strike < spot;
            const putItm = spot !== null && line.strike > spot;
            let className = "grid-row line";
            if (item.index === boundary) className += " spot-above";
            if (item.index === atm) className += " atm";
            return (
              <div
                key={item.key}
                role="row"
                className={className}
                data-strike={line.strike}
                style={{ transform: `translateY(${item.start}px)` }}
              >
                {CALL_COLUMNS.map((c) => (
                  <Cell
                    key={`c-${c.field}`}
                    column={c}
                    row={call}
                    direction={flashDirection(callChanges, c.field, now, FLASH_MS)}
                    itm={callItm}
                  />
                ))}
                <div role="cell" className="cell strike num">
                  {formatStrike(line.strike)}
                </div>
                {COLUMNS.map((c) => (
                  <Cell
                    key={`p-${c.field}`}
                    column={c}
                    row={put}
                    direction={flashDirection(putChanges, c.field, now, FLASH_MS)}
                    itm={putItm}
                  />
                ))}
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}

interface CellProps {
  column: Column;
  row: ContractRow | undefined;
  direction: -1 | 0 | 1;
  itm: boolean;
}

function Cell({ column, row, direction, itm }: CellProps) {
  const value = row ? (row[column.field] as number | null | undefined) : undefined;
  let className = "cell num";
  if (column.className) className += ` ${column.className}`;
  if (itm) className += " itm";
  if (direction > 0) className += " up";
  else if (direction < 0) className += " down";
  return (
    <div role="cell" className={className} data-field={column.field}>
      {column.format(value)}
    </div>
  );
}
