import type { ValidationIssue } from '@dagops/engine';

/** One agent process to manage on this machine. */
export interface LocalProcessDeclaration {
  /** The (logical) host it belongs to; a positive integer. */
  readonly hostId: number;
  /** Unique on the host; letters, digits, `_`, `.`, `-` (it names the log file). */
  readonly alias: string;
  /** The start command as argv: `argv[0]` is the executable. Never run through a shell. */
  readonly argv: readonly string[];
  /** Working directory. @default this process's */
  readonly cwd?: string;
  /** Environment. @default this process's */
  readonly env?: Readonly<Record<string, string>>;
  /** Ports it listens on, shown in `ports`. @default [] */
  readonly ports?: readonly number[];
  /** Whether users may stop and start it. @default true */
  readonly operable?: boolean;
  /** Where stdout and stderr go (appended). @default `<stateDir>/logs/host-<hostId>/<alias>.log` */
  readonly logFile?: string;
}

const ALIAS = /^[A-Za-z0-9_.-]+$/;

function isPositiveId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

/** Every problem of a declaration, with its path and value. */
export function declarationIssues(declaration: LocalProcessDeclaration): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const d = declaration as unknown as Record<string, unknown>;
  if (!isPositiveId(d['hostId'])) {
    issues.push({ path: 'hostId', message: 'must be a positive safe integer', value: d['hostId'] });
  }
  if (typeof d['alias'] !== 'string' || !ALIAS.test(d['alias'])) {
    issues.push({
      path: 'alias',
      message: 'must be letters, digits, "_", "." or "-"',
      value: d['alias'],
    });
  }
  const argv = d['argv'];
  if (!Array.isArray(argv) || argv.length === 0) {
    issues.push({ path: 'argv', message: 'must be a non-empty array of strings', value: argv });
  } else {
    argv.forEach((arg, i) => {
      if (typeof arg !== 'string' || (i === 0 && arg.length === 0)) {
        issues.push({ path: `argv[${i}]`, message: 'must be a non-empty string', value: arg });
      }
    });
  }
  const ports = d['ports'];
  if (ports !== undefined) {
    if (!Array.isArray(ports)) {
      issues.push({ path: 'ports', message: 'must be an array of port numbers', value: ports });
    } else {
      ports.forEach((port, i) => {
        if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) {
          issues.push({
            path: `ports[${i}]`,
            message: 'must be an integer in 1..65535',
            value: port,
          });
        }
      });
    }
  }
  if (d['operable'] !== undefined && typeof d['operable'] !== 'boolean') {
    issues.push({ path: 'operable', message: 'must be a boolean', value: d['operable'] });
  }
  for (const field of ['cwd', 'logFile'] as const) {
    const value = d[field];
    if (value !== undefined && (typeof value !== 'string' || value.length === 0)) {
      issues.push({ path: field, message: 'must be a non-empty string', value });
    }
  }
  const env = d['env'];
  if (env !== undefined) {
    if (typeof env !== 'object' || env === null || Array.isArray(env)) {
      issues.push({ path: 'env', message: 'must be an object of strings', value: env });
    } else {
      for (const [key, value] of Object.entries(env)) {
        if (typeof value !== 'string') {
          issues.push({ path: `env.${key}`, message: 'must be a string', value });
        }
      }
    }
  }
  return issues;
}
