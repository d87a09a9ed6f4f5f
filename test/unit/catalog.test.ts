/**
 * Catalog-file validation: structural errors name the JSON path; names and addresses that cannot go
 * on the wire are skipped with a warning naming the path.
 */
import { describe, expect, it } from 'vitest';
import {
  openCatalog, parseCatalog, servableServiceName, validateCatalog, validateGatewayServices, validateServiceEntries, type ServiceInstance,
} from '../../src/catalog/catalog.js';
import { CatalogError } from '../../src/errors.js';
import { catalogDoc, instanceDoc, nodeDoc, type Json } from '../support/cases.js';

/** dc1 with two nodes and web (3 instances, the third on web-1); dc2 empty. Fresh on every call. */
function base(): Json {
  const n1 = nodeDoc('web-1', '10.0.1.11'), n2 = nodeDoc('web-2', '10.0.1.12');
  return catalogDoc('dc1', {
    dc1: {
      services: {
        web: [
          instanceDoc(n1, 'web', { port: 8080, tags: ['v1'] }),
          instanceDoc(n2, 'web', { port: 8080 }),
          instanceDoc(n1, 'web', { id: 'web-alt', port: 8081 }),
        ],
      },
    },
    dc2: {},
  });
}

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const dc1 = (d: Doc) => d.datacenters.dc1;
const web = (d: Doc, i: number) => dc1(d).services.web[i];

function expectError(doc: unknown, message: string) {
  let err: unknown;
  try { validateCatalog(doc); } catch (e) { err = e; }
  expect(err, `expected a CatalogError: ${message}`).toBeInstanceOf(CatalogError);
  expect((err as CatalogError).code).toBe('CDNS_ERR_CATALOG_INVALID');
  expect((err as CatalogError).message).toBe(message);
  expect((err as CatalogError).path).toBe(message.slice(0, message.indexOf(': ')));
}

describe('validateCatalog: the base document', () => {
  it('is accepted without warnings', () => {
    const { catalog, warnings } = validateCatalog(base());
    expect(warnings).toEqual([]);
    expect(catalog.datacenter).toBe('dc1');
    expect([...catalog.datacenters.keys()].sort()).toEqual(['dc1', 'dc2']);
    expect(catalog.datacenters.get('dc1')!.services.get('web')).toHaveLength(3);
  });
});

describe('validateCatalog: structural errors name the JSON path', () => {
  const cases: Array<[string, (d: Doc) => unknown]> = [
    ['$: expected an object', () => []],
    ['datacenter: is required', (d) => { delete d.datacenter; return d; }],
    ['datacenter: expected a string', (d) => { d.datacenter = 1; return d; }],
    ['datacenter: must not be empty', (d) => { d.datacenter = ''; return d; }],
    ['datacenter: must be a single DNS label of 1-63 bytes', (d) => { d.datacenter = 'a.b'; return d; }],
    ['datacenters: expected an object', (d) => { d.datacenters = []; return d; }],
    ['datacenters: has no entry for the local datacenter "dc3"', (d) => { d.datacenter = 'dc3'; return d; }],
    ['datacenters.dc2: expected an object', (d) => { d.datacenters.dc2 = 'x'; return d; }],
    ['datacenters.dc1.nodes: expected an array', (d) => { dc1(d).nodes = {}; return d; }],
    ['datacenters.dc1.nodes[1].Node: is required', (d) => { delete dc1(d).nodes[1].Node; return d; }],
    ['datacenters.dc1.nodes[0].Node: must not be empty', (d) => { dc1(d).nodes[0].Node = ''; return d; }],
    ['datacenters.dc1.nodes[0].Address: is required', (d) => { delete dc1(d).nodes[0].Address; return d; }],
    ['datacenters.dc1.nodes[0].Meta.rack: expected a string', (d) => { dc1(d).nodes[0].Meta = { rack: 3 }; return d; }],
    ['datacenters.dc1.nodes[0].TaggedAddresses: expected an object', (d) => { dc1(d).nodes[0].TaggedAddresses = ['x']; return d; }],
    ['datacenters.dc1.services: expected an object', (d) => { dc1(d).services = []; return d; }],
    ['datacenters.dc1.services.web: expected an array', (d) => { dc1(d).services.web = {}; return d; }],
    ['datacenters.dc1.services.web[1]: expected an object', (d) => { dc1(d).services.web[1] = null; return d; }],
    ['datacenters.dc1.services.web[2].Service: expected an object', (d) => { delete web(d, 2).Service; return d; }],
    ['datacenters.dc1.services.web[2].Service.Port: expected an integer 0-65535', (d) => { web(d, 2).Service.Port = 70000; return d; }],
    ['datacenters.dc1.services.web[2].Service.Port: expected an integer 0-65535', (d) => { web(d, 2).Service.Port = '8080'; return d; }],
    ['datacenters.dc1.services.web[0].Service.Port: expected an integer 0-65535', (d) => { web(d, 0).Service.Port = 80.5; return d; }],
    ['datacenters.dc1.services.web[1].Service.Service: expected "web", in any case (the key it is listed under)', (d) => { web(d, 1).Service.Service = 'api'; return d; }],
    ['datacenters.dc1.services.web[1].Service.Service: is required', (d) => { delete web(d, 1).Service.Service; return d; }],
    ['datacenters.dc1.services.web[0].Service.Tags: expected an array', (d) => { web(d, 0).Service.Tags = 'v1'; return d; }],
    ['datacenters.dc1.services.web[0].Service.Tags[1]: expected a string', (d) => { web(d, 0).Service.Tags = ['v1', 2]; return d; }],
    ['datacenters.dc1.services.web[0].Service.Address: expected a string', (d) => { web(d, 0).Service.Address = 10; return d; }],
    ['datacenters.dc1.services.web[0].Service.Weights.Passing: expected an integer', (d) => { web(d, 0).Service.Weights = { Passing: '10', Warning: 1 }; return d; }],
    ['datacenters.dc1.services.web[0].Service.Weights.Warning: expected an integer', (d) => { web(d, 0).Service.Weights = { Passing: 10, Warning: 2.5 }; return d; }],
    ['entry_nodes: expected true or false', (d) => { d.entry_nodes = 'yes'; return d; }],
    ['datacenters.dc1.gateway_services: expected an object', (d) => { dc1(d).gateway_services = ['db']; return d; }],
    ['datacenters.dc1.gateway_services.tgw: expected an array', (d) => { dc1(d).gateway_services = { tgw: 'db' }; return d; }],
    ['datacenters.dc1.gateway_services.tgw[1]: expected a string', (d) => { dc1(d).gateway_services = { tgw: ['db', 7] }; return d; }],
    ['datacenters.dc1.services.web[0].Service.Weights: expected an object', (d) => { web(d, 0).Service.Weights = 3; return d; }],
    ['datacenters.dc1.services.web[0].Service.TaggedAddresses.lan: expected an object', (d) => { web(d, 0).Service.TaggedAddresses = { lan: '10.0.0.1' }; return d; }],
    ['datacenters.dc1.services.web[0].Service.TaggedAddresses.wan.Port: expected an integer 0-65535', (d) => { web(d, 0).Service.TaggedAddresses = { wan: { Address: '1.2.3.4', Port: 1e6 } }; return d; }],
    ['datacenters.dc1.services.web[0].Service.Meta.v: expected a string', (d) => { web(d, 0).Service.Meta = { v: true }; return d; }],
    ['datacenters.dc1.services.web[0].Checks: expected an array', (d) => { web(d, 0).Checks = {}; return d; }],
    ['datacenters.dc1.services.web[0].Checks[1].Status: is required', (d) => { delete web(d, 0).Checks[1].Status; return d; }],
    ['datacenters.dc1.services.web[0].Checks[0].Status: must not be empty', (d) => { web(d, 0).Checks[0].Status = ''; return d; }],
    ['datacenters.dc1.services.web[1].Node: expected an object', (d) => { web(d, 1).Node = 'web-2'; return d; }],
    ['datacenters.dc1.services.web[1].Node.Node: is required', (d) => { delete web(d, 1).Node.Node; return d; }],
  ];
  it.each(cases)('%s', (message, mutate) => {
    expectError(mutate(base() as Doc), message);
  });

  it('parseCatalog reports JSON syntax errors at $', () => {
    let err: unknown;
    try { parseCatalog('{"datacenter": '); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(CatalogError);
    expect((err as CatalogError).path).toBe('$');
    expect((err as CatalogError).message).toMatch(/^\$: not valid JSON/);
  });

  it('parseCatalog validates what it parses', () => {
    expect(parseCatalog(JSON.stringify(base())).catalog.datacenter).toBe('dc1');
    const d = base() as Doc;
    web(d, 2).Service.Port = -1;
    expect(() => parseCatalog(JSON.stringify(d))).toThrow('datacenters.dc1.services.web[2].Service.Port: expected an integer 0-65535');
  });
});

describe('validateCatalog: skipped with a warning', () => {
  const long = 'n'.repeat(64);

  it('a node whose name has a label over 63 bytes', () => {
    const d = base() as Doc;
    dc1(d).nodes.push(nodeDoc(`${long}.x`, '10.0.9.9'));
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^datacenters\.dc1\.nodes\[2\]\.Node: .*node skipped$/);
    expect(catalog.datacenters.get('dc1')!.nodes.has(`${long}.x`)).toBe(false);
  });

  it('a 63-byte label is fine', () => {
    const d = base() as Doc;
    dc1(d).nodes.push(nodeDoc('n'.repeat(63), '10.0.9.9'));
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toEqual([]);
    expect(catalog.datacenters.get('dc1')!.nodes.has('n'.repeat(63))).toBe(true);
  });

  it('an instance on a node whose name cannot be a DNS name', () => {
    const d = base() as Doc;
    dc1(d).services.web.push(instanceDoc(nodeDoc(long, '10.0.9.9'), 'web', { port: 1 }));
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^datacenters\.dc1\.services\.web\[3\]\.Node\.Node: /);
    expect(catalog.datacenters.get('dc1')!.services.get('web')).toHaveLength(3);
  });

  it('a service whose name is over 63 bytes', () => {
    const d = base() as Doc;
    dc1(d).services[long] = [instanceDoc(nodeDoc('web-1', '10.0.1.11'), long, { port: 1 })];
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`^datacenters\\.dc1\\.services\\.${long}: .*service skipped$`));
    expect(catalog.datacenters.get('dc1')!.services.has(long)).toBe(false);
  });

  it('a node whose address is neither an IP nor a host name', () => {
    const d = base() as Doc;
    dc1(d).nodes.push(nodeDoc('bad', 'not an address!'));
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^datacenters\.dc1\.nodes\[2\]\.Address: "not an address!" .*node skipped$/);
    expect(catalog.datacenters.get('dc1')!.nodes.has('bad')).toBe(false);
  });

  it('a service address that is neither an IP nor a host name', () => {
    const d = base() as Doc;
    web(d, 1).Service.Address = '10.0.0.1/24';
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^datacenters\.dc1\.services\.web\[1\]\.Service\.Address: .*instance skipped$/);
    expect(catalog.datacenters.get('dc1')!.services.get('web')!.map((s) => s.id)).toEqual(['web-web-1', 'web-alt']);
  });

  it('node tagged addresses of the wrong family are ignored, the node kept', () => {
    const d = base() as Doc;
    dc1(d).nodes[0].TaggedAddresses = { lan_ipv4: '::1', lan_ipv6: '10.0.0.1', lan: '10.0.1.11', wan: 'bad address!' };
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toHaveLength(3);
    expect(warnings.some((w) => w.startsWith('datacenters.dc1.nodes[0].TaggedAddresses.lan_ipv4: "::1"'))).toBe(true);
    expect(warnings.some((w) => w.startsWith('datacenters.dc1.nodes[0].TaggedAddresses.lan_ipv6: "10.0.0.1"'))).toBe(true);
    expect(warnings.some((w) => w.startsWith('datacenters.dc1.nodes[0].TaggedAddresses.wan: '))).toBe(true);
    expect(catalog.datacenters.get('dc1')!.nodes.get('web-1')!.taggedAddresses).toEqual({ lan: '10.0.1.11' });
  });

  it('service tagged addresses of the wrong family are ignored, the instance kept', () => {
    const d = base() as Doc;
    web(d, 0).Service.TaggedAddresses = { lan_ipv6: { Address: '10.0.0.1', Port: 80 }, lan_ipv4: { Address: '10.0.1.11', Port: 8080 } };
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^datacenters\.dc1\.services\.web\[0\]\.Service\.TaggedAddresses\.lan_ipv6\.Address: /);
    expect(catalog.datacenters.get('dc1')!.services.get('web')![0]!.taggedAddresses).toEqual({ lan_ipv4: { address: '10.0.1.11', port: 8080 } });
  });

  it('a duplicate node: the first is kept', () => {
    const d = base() as Doc;
    dc1(d).nodes.push(nodeDoc('web-1', '10.9.9.9'));
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toEqual([expect.stringMatching(/^datacenters\.dc1\.nodes\[2\]\.Node: duplicate node "web-1"/)]);
    expect(catalog.datacenters.get('dc1')!.nodes.get('web-1')!.address).toBe('10.0.1.11');
  });

  // A dotted quad that is not an IPv4 address is not a host name either (RFC 1123 §2.1: the
  // top-level label of a host name is alphabetic), so it is no CNAME target but a bad address.
  it('a node address 10.0.1.300 is skipped with a warning, not taken for a host name', () => {
    const d = base() as Doc;
    dc1(d).nodes.push(nodeDoc('typo', '10.0.1.300'));
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toEqual([expect.stringMatching(/^datacenters\.dc1\.nodes\[2\]\.Address: "10\.0\.1\.300"/)]);
    expect(catalog.datacenters.get('dc1')!.nodes.has('typo')).toBe(false);
  });

  it('a service address 10.0.2.256 is skipped with a warning, not taken for a host name', () => {
    const d = base() as Doc;
    web(d, 1).Service.Address = '10.0.2.256';
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toEqual([expect.stringMatching(/^datacenters\.dc1\.services\.web\[1\]\.Service\.Address: "10\.0\.2\.256"/)]);
    expect(catalog.datacenters.get('dc1')!.services.get('web')).toHaveLength(2);
  });
});

describe('validateCatalog: accepted input shapes', () => {
  it('service TaggedAddresses with lower-case address/port (as Consul\'s docs print them)', () => {
    const d = base() as Doc;
    web(d, 0).Service.TaggedAddresses = { lan: { address: '10.0.1.11', port: 8080 }, wan: { Address: '198.18.0.1', Port: 80 } };
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toEqual([]);
    expect(catalog.datacenters.get('dc1')!.services.get('web')![0]!.taggedAddresses).toEqual({
      lan: { address: '10.0.1.11', port: 8080 }, wan: { address: '198.18.0.1', port: 80 },
    });
  });

  it('optional fields default: Port 0, Weights 1/1, no tags, no checks, the service name as ID', () => {
    const d = base() as Doc;
    const s = web(d, 1);
    delete s.Service.Port; delete s.Service.Weights; delete s.Service.Tags; delete s.Service.ID; delete s.Checks;
    const inst = validateCatalog(d).catalog.datacenters.get('dc1')!.services.get('web')![1]!;
    expect(inst).toMatchObject({ port: 0, weights: { passing: 1, warning: 1 }, tags: [], checks: [], id: 'web' });
  });

  it('one node object per name: the nodes list wins over service entries', () => {
    const d = base() as Doc;
    dc1(d).nodes = [nodeDoc('web-1', '10.0.1.11', { meta: { from: 'nodes' } })];
    const dcat = validateCatalog(d).catalog.datacenters.get('dc1')!;
    expect(dcat.services.get('web')![0]!.node.meta).toEqual({ from: 'nodes' });
    expect(dcat.nodes.get('web-2')!.address).toBe('10.0.1.12'); // known only from a service entry
  });

  it('a node address may be a host name', () => {
    const d = base() as Doc;
    dc1(d).nodes.push(nodeDoc('ext', 'db.example.com'));
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toEqual([]);
    expect(catalog.datacenters.get('dc1')!.nodes.get('ext')!.address).toBe('db.example.com');
  });
});

// ---------------------------------------------------------------------------------------------
// Consul's data shapes: names grouped case-insensitively, weights as stored, gateway links
// ---------------------------------------------------------------------------------------------

const who = (l: readonly ServiceInstance[] | undefined) => (l ?? []).map((s) => `${s.service}@${s.node.name}/${s.id}`);

describe('service names differing only in case are one service (Consul indexes them lower-cased)', () => {
  it('a file: one key, the code-unit-smallest spelling; the instances are the union in document order; no warning', () => {
    const d = base() as Doc;
    dc1(d).services.Web = [instanceDoc(nodeDoc('web-3', '10.0.1.13'), 'Web', { port: 8080 })];
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toEqual([]);
    const services = catalog.datacenters.get('dc1')!.services;
    expect([...services.keys()]).toEqual(['Web']);
    expect(who(services.get('Web'))).toEqual(['web@web-1/web-web-1', 'web@web-2/web-web-2', 'web@web-1/web-alt', 'Web@web-3/Web-web-3']);
  });

  it('a file assembled from /v1/catalog/services (every spelling holds the whole union): each instance once', () => {
    const both = () => [instanceDoc(nodeDoc('a-1', '10.0.0.1'), 'Web', { port: 80 }), instanceDoc(nodeDoc('b-1', '10.0.0.2'), 'web', { port: 80 })];
    const { catalog, warnings } = validateCatalog(catalogDoc('dc1', { dc1: { services: { web: both(), Web: both() } } }));
    expect(warnings).toEqual([]);
    expect(who(catalog.datacenters.get('dc1')!.services.get('Web'))).toEqual(['Web@a-1/Web-a-1', 'web@b-1/web-b-1']);
  });

  it('the preview groups the same way: one key, any spelling asks for it', () => {
    const d = base() as Doc;
    dc1(d).services.Web = [instanceDoc(nodeDoc('web-1', '10.0.1.11'), 'Web', { id: 'w9', port: 9 })];
    const pd = openCatalog(d).preview.datacenters.get('dc1')!;
    expect(pd.serviceNames).toEqual(['Web']);
    expect(who(pd.service('WEB') ?? undefined)).toEqual(who(validateCatalog(d).catalog.datacenters.get('dc1')!.services.get('Web')));
  });

  it('validateServiceEntries (the live source): /v1/health/service/web holds "Web" and "web", each keeps its spelling', () => {
    const body = [instanceDoc(nodeDoc('a-1', '10.0.0.1'), 'Web', { port: 80 }), instanceDoc(nodeDoc('b-1', '10.0.0.2'), 'web', { port: 80 })];
    const { instances, warnings } = validateServiceEntries('dc1', 'Web', body, new Map());
    expect(warnings).toEqual([]);
    expect(instances.map((s) => s.service)).toEqual(['Web', 'web']);
    expect(() => validateServiceEntries('dc1', 'Web', [instanceDoc(nodeDoc('a-1', '10.0.0.1'), 'api')], new Map()))
      .toThrow('dc1.services.Web[0].Service.Service: expected "Web", in any case (the key it is listed under)');
  });
});

describe('weights as Consul stores them (structs.ToServiceNode, ValidateWeights): never an error for an integer', () => {
  const cases: Array<[string, unknown, { passing: number; warning: number }]> = [
    ['absent: 1 and 1', undefined, { passing: 1, warning: 1 }],
    ['null: 1 and 1', null, { passing: 1, warning: 1 }],
    ['kept as given', { Passing: 10, Warning: 3 }, { passing: 10, warning: 3 }],
    ['the limits are valid', { Passing: 65535, Warning: 0 }, { passing: 65535, warning: 0 }],
    ['Passing 0 is refused: the whole object becomes 1 and 1', { Passing: 0, Warning: 3 }, { passing: 1, warning: 1 }],
    ['Passing above 65535: 1 and 1', { Passing: 70000, Warning: 3 }, { passing: 1, warning: 1 }],
    ['Warning above 65535: 1 and 1', { Passing: 10, Warning: 70000 }, { passing: 1, warning: 1 }],
    ['a negative weight: 1 and 1', { Passing: 10, Warning: -1 }, { passing: 1, warning: 1 }],
    ['a missing Warning is Go\'s zero value (valid)', { Passing: 10 }, { passing: 10, warning: 0 }],
    ['a missing Passing is 0 (refused): 1 and 1', { Warning: 5 }, { passing: 1, warning: 1 }],
    ['an empty object: 1 and 1', {}, { passing: 1, warning: 1 }],
  ];
  it.each(cases)('%s', (_name, w, want) => {
    const d = base() as Doc;
    if (w === undefined) delete web(d, 0).Service.Weights; else web(d, 0).Service.Weights = w;
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toEqual([]);
    expect(catalog.datacenters.get('dc1')!.services.get('web')![0]!.weights).toEqual(want);
  });
});

describe('gateway_services: terminating gateways and the services they link', () => {
  const long = 'n'.repeat(64);
  it('is read per datacenter; absent, the datacenter has no links', () => {
    const d = base() as Doc;
    dc1(d).gateway_services = { tgw: ['db', 'cache'] };
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toEqual([]);
    expect(catalog.datacenters.get('dc1')!.gatewayServices).toEqual(new Map([['tgw', ['db', 'cache']]]));
    expect(catalog.datacenters.get('dc2')!.gatewayServices).toBeUndefined();
  });

  it('gateways differing only in case are one (smallest spelling, union of links); links once each, case-insensitively', () => {
    const d = base() as Doc;
    dc1(d).gateway_services = { tgw: ['db', 'DB'], TGW: ['cache', 'db'] };
    expect(validateCatalog(d).catalog.datacenters.get('dc1')!.gatewayServices).toEqual(new Map([['TGW', ['db', 'cache']]]));
  });

  it('names that cannot be DNS labels are skipped with a warning naming the path', () => {
    const d = base() as Doc;
    dc1(d).gateway_services = { 'a.b': ['db'], tgw: ['db', long, ''] };
    const { catalog, warnings } = validateCatalog(d);
    expect(warnings).toEqual([
      expect.stringMatching(/^datacenters\.dc1\.gateway_services\.a\.b: gateway name "a\.b" .*gateway skipped$/),
      expect.stringMatching(/^datacenters\.dc1\.gateway_services\.tgw\[1\]: service name "n{64}" .*link skipped$/),
      expect.stringMatching(/^datacenters\.dc1\.gateway_services\.tgw\[2\]: service name "" .*link skipped$/),
    ]);
    expect(catalog.datacenters.get('dc1')!.gatewayServices).toEqual(new Map([['tgw', ['db']]]));
  });
});

describe('validateGatewayServices: one /v1/catalog/gateway-services/<gateway> body (structs.GatewayService)', () => {
  const mapping = (service: string, kind = 'terminating-gateway', extra: Record<string, unknown> = {}) => ({
    Gateway: { Name: 'tgw' }, Service: { Name: service }, GatewayKind: kind, CAFile: '', CertFile: '', KeyFile: '', SNI: '',
    CreateIndex: 10, ModifyIndex: 10, ...extra,
  });
  it('the linked services of a terminating gateway, once each case-insensitively', () => {
    const body = [mapping('db'), mapping('billing', 'terminating-gateway', { FromWildcard: true, ServiceKind: 'service' }), mapping('DB'), mapping('ext', 'terminating-gateway', { ServiceKind: 'destination' })];
    expect(validateGatewayServices('dc1', 'tgw', body)).toEqual({ services: ['db', 'billing', 'ext'], warnings: [] });
  });
  it('an ingress gateway\'s mappings and the wildcard are not links for .connect; unservable names are warned about', () => {
    const body = [mapping('web', 'ingress-gateway', { Port: 8080, Protocol: 'http' }), mapping('*'), mapping('a.b')];
    expect(validateGatewayServices('dc1', 'tgw', body)).toEqual({
      services: [], warnings: [expect.stringMatching(/^dc1\.gateway_services\.tgw\[2\]\.Service\.Name: service name "a\.b" .*link skipped$/)],
    });
  });
  it.each([
    ['dc1.gateway_services.tgw: expected an array', {}],
    ['dc1.gateway_services.tgw[0]: expected an object', ['db']],
    ['dc1.gateway_services.tgw[0].Service: expected an object', [{ Gateway: { Name: 'tgw' }, GatewayKind: 'terminating-gateway' }]],
    ['dc1.gateway_services.tgw[0].Service.Name: is required', [{ Service: {}, GatewayKind: 'terminating-gateway' }]],
    ['dc1.gateway_services.tgw[0].GatewayKind: expected a string', [{ Service: { Name: 'db' }, GatewayKind: 3 }]],
    ['dc1.gateway_services.tgw[0].Gateway.Name: expected "tgw", in any case (the gateway asked for)', [mapping('db', 'terminating-gateway', { Gateway: { Name: 'other' } })]],
  ])('%s', (message, body) => {
    expect(() => validateGatewayServices('dc1', 'tgw', body)).toThrow(message);
  });
});

describe('servableServiceName: one rule for files, snapshots, the live source and the zone', () => {
  it.each([
    ['web', true], ['Web', true], ['web_1', true], ['my service', true], ['café', true], ['n'.repeat(63), true],
    ['', false], ['a.b', false], ['n'.repeat(64), false], ['é'.repeat(32), false],
  ])('%j -> %s', (name, ok) => { expect(servableServiceName(name)).toBe(ok); });
});

describe('entry_nodes (the snapshot of a live catalog): each entry keeps its own node copy', () => {
  function doc(entryNodes: boolean): Doc {
    const d = base() as Doc;
    if (entryNodes) d.entry_nodes = true;
    web(d, 1).Node.Address = '10.0.1.99'; // newer than the nodes list's copy
    dc1(d).services.api = [instanceDoc(nodeDoc('api-1', '10.0.3.1'), 'api', { port: 1 })];
    dc1(d).nodes = dc1(d).nodes.filter((n: Json) => n.Node !== 'api-1'); // named only by an entry
    return d;
  }
  it('with it: the entry\'s copy is the instance\'s node, and a node only entries name is not added to the list', () => {
    const dcat = validateCatalog(doc(true)).catalog.datacenters.get('dc1')!;
    expect(dcat.services.get('web')![1]!.node.address).toBe('10.0.1.99');
    expect(dcat.nodes.get('web-2')!.address).toBe('10.0.1.12');
    expect(dcat.services.get('web')![0]!.node).toBe(dcat.nodes.get('web-1')); // an equal copy is shared
    expect(dcat.nodes.has('api-1')).toBe(false);
    expect(dcat.services.get('api')![0]!.node.address).toBe('10.0.3.1');
    // The preview knows such a service from its entries alone.
    expect(openCatalog(doc(true)).preview.datacenters.get('dc1')!.service('api')!.map((s) => s.node.address)).toEqual(['10.0.3.1']);
  });
  it('without it (a hand-made file): the nodes list wins, nodes named only in entries are added', () => {
    const dcat = validateCatalog(doc(false)).catalog.datacenters.get('dc1')!;
    expect(dcat.services.get('web')![1]!.node.address).toBe('10.0.1.12');
    expect(dcat.nodes.get('api-1')!.address).toBe('10.0.3.1');
    expect(openCatalog(doc(false)).preview.datacenters.get('dc1')!.service('api')).toBeNull();
  });
});
