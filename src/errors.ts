/**
 * One error base with a stable literal `code` that callers branch on (never on message text).
 */
export type ErrorCode =
  | 'CDNS_ERR_CONFIG'
  | 'CDNS_ERR_CATALOG_INVALID'
  | 'CDNS_ERR_CATALOG_READ'
  | 'CDNS_ERR_BIND'
  | 'CDNS_ERR_STATE'
  | 'CDNS_ERR_CONSUL_UNAVAILABLE'
  | 'CDNS_ERR_CONSUL_TIMEOUT'
  | 'CDNS_ERR_CONSUL_HTTP'
  | 'CDNS_ERR_CONSUL_RATE_LIMITED'
  | 'CDNS_ERR_CONSUL_ACL'
  | 'CDNS_ERR_CONSUL_BAD_RESPONSE';

export class CatalogDnsError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'CatalogDnsError';
  }
}

/** A configuration value was rejected: names the option and the reason. */
export class ConfigError extends CatalogDnsError {
  readonly key: string;
  constructor(key: string, reason: string, options?: { cause?: unknown }) {
    super('CDNS_ERR_CONFIG', `${key}: ${reason}`, options);
    this.key = key;
    this.name = 'ConfigError';
  }
}

/** The catalog document was rejected: names the JSON path and the reason. */
export class CatalogError extends CatalogDnsError {
  readonly path: string;
  constructor(path: string, reason: string, options?: { cause?: unknown }) {
    super('CDNS_ERR_CATALOG_INVALID', `${path}: ${reason}`, options);
    this.path = path;
    this.name = 'CatalogError';
  }
}
