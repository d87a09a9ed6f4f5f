/**
 * The detector over the non-passing checks (src/catalog/check-diff.ts): which services and nodes
 * two answers of /v1/health/state/critical (or /warning) say changed.
 */
import { describe, expect, it } from 'vitest';
import { changedChecks, checkStates } from '../../src/catalog/check-diff.js';

const check = (node: string, id: string, status: string, modifyIndex: number, service = '') =>
  ({ Node: node, CheckID: id, Name: id, Status: status, ServiceID: service ? `${service}-1` : '', ServiceName: service, ServiceTags: [], CreateIndex: 1, ModifyIndex: modifyIndex });

const diff = (prev: unknown[], next: unknown[]) => {
  const d = changedChecks(checkStates(prev), checkStates(next));
  return { services: [...d.services].sort(), nodes: [...d.nodes].sort() };
};

describe('changedChecks', () => {
  const web = check('n1', 'service:web-1', 'critical', 10, 'web');
  const serf = check('n2', 'serfHealth', 'critical', 11);
  const cases: Array<[string, unknown[], unknown[], { services: string[]; nodes: string[] }]> = [
    ['nothing changed', [web, serf], [web, serf], { services: [], nodes: [] }],
    ['a service check turns critical', [], [web], { services: ['web'], nodes: [] }],
    ['a service check passes again (it leaves the list)', [web], [], { services: ['web'], nodes: [] }],
    ['a node check turns critical: the node', [web], [web, serf], { services: [], nodes: ['n2'] }],
    ['a node check passes again', [web, serf], [web], { services: [], nodes: ['n2'] }],
    ['critical, then passing and critical again between two answers: a new ModifyIndex', [web], [{ ...web, ModifyIndex: 14 }], { services: ['web'], nodes: [] }],
    ['critical to warning (in the warning list: the same key with another status)', [web], [{ ...web, Status: 'warning', ModifyIndex: 12 }], { services: ['web'], nodes: [] }],
    ['a check moved to another service names both', [web], [{ ...web, ServiceName: 'api', ModifyIndex: 13 }], { services: ['api', 'web'], nodes: [] }],
    ['the spelling Consul gives is kept (the caller lower-cases)', [], [check('n3', 'c', 'critical', 5, 'Web')], { services: ['Web'], nodes: [] }],
  ];
  for (const [name, prev, next, want] of cases) it(name, () => expect(diff(prev, next)).toEqual(want));
});

describe('checkStates', () => {
  it('keeps checks by node and check ID; leaves out what is not a check', () => {
    const s = checkStates([check('n1', 'a', 'critical', 3, 'web'), null, 7, { Node: 'n1' }, { CheckID: 'x' }, check('n1', 'b', 'warning', 4)]);
    expect([...s.keys()]).toEqual(['n1\0a', 'n1\0b']);
    expect(s.get('n1\0a')).toEqual({ node: 'n1', status: 'critical', modifyIndex: '3', service: 'web' });
    expect(s.get('n1\0b')!.service).toBe('');
  });
});
