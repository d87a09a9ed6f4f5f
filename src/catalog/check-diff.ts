/**
 * The change detector over Consul's non-passing checks: `/v1/health/state/critical` and `/warning`
 * list the checks that are not passing, and their index moves on any check change. What differs
 * between two answers names the services (a service's check) and the nodes (a node-level check:
 * every service on the node) whose health changed; the live source reads those again
 * (docs/consul-source.md).
 */

/** One answer, by check: `node\0checkID` -> its status, ModifyIndex and service name. */
export type CheckStates = ReadonlyMap<string, CheckState>;

export interface CheckState {
  readonly node: string;
  readonly status: string;
  /** A check that went passing and back between two answers has a new one. */
  readonly modifyIndex: string;
  /** "" for a node-level check. */
  readonly service: string;
}

/** The checks of a `/v1/health/state/<state>` body (entries that are not checks are left out). */
export function checkStates(body: readonly unknown[]): Map<string, CheckState> {
  const out = new Map<string, CheckState>();
  for (const c of body) {
    if (typeof c !== 'object' || c === null) continue;
    const o = c as Record<string, unknown>;
    if (typeof o.Node !== 'string' || typeof o.CheckID !== 'string') continue;
    out.set(`${o.Node}\0${o.CheckID}`, {
      node: o.Node, status: String(o.Status), modifyIndex: String(o.ModifyIndex),
      service: typeof o.ServiceName === 'string' ? o.ServiceName : '',
    });
  }
  return out;
}

const same = (a: CheckState, b: CheckState): boolean =>
  a.status === b.status && a.modifyIndex === b.modifyIndex && a.service === b.service;

/**
 * What changed from `prev` to `next`: the services (as Consul spells them) of service checks that
 * appeared, went or changed, and the nodes of node-level checks that did. A check that moved to
 * another service names both.
 */
export function changedChecks(prev: CheckStates, next: CheckStates): { services: Set<string>; nodes: Set<string> } {
  const services = new Set<string>();
  const nodes = new Set<string>();
  const touched = (c: CheckState) => { if (c.service) services.add(c.service); else nodes.add(c.node); };
  for (const [k, c] of next) {
    const p = prev.get(k);
    if (!p || !same(p, c)) { touched(c); if (p && p.service !== c.service) touched(p); }
  }
  for (const [k, c] of prev) if (!next.has(k)) touched(c);
  return { services, nodes };
}
