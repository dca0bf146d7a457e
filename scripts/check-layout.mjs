// Layout check (issue 18), run by `npm run lint`: fails with file:line when a function body in
// src/ is over MAX_FUNCTION_LINES lines or when an import runs upward through the layers below.
// Usage: node scripts/check-layout.mjs [ROOT]   (ROOT holds src/; the repository by default)
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const MAX_FUNCTION_LINES = 80;

// Bottom to top; a file may import its own layer and the layers below it. Inside a layer marked
// `apart`, the groups are peers that must not import each other. The first matching entry wins,
// so the cache's shared helpers are listed before the rest of src/cache/.
// Data flows server -> cache -> store/upstream; config and the helpers sit at the bottom.
export const LAYERS = [
  {
    name: 'foundation',
    groups: {
      foundation: [
        'src/errors.ts',
        'src/net/',
        'src/expfmt/',
        'src/config/',
        // Every metric defined once; cache, stores and upstream record into it. It imports
        // nothing above build-info and last-fetch.
        'src/metrics.ts',
        'src/build-info.ts',
        'src/last-fetch.ts',
        'src/log.ts',
        // The one clock every part reads (issue 18).
        'src/clock.ts',
      ],
    },
  },
  {
    // What the cache shares with its stores and its upstream: the store contract and the
    // stores, the record, keys, representations, freshness arithmetic, the filler contract.
    name: 'store and upstream helpers',
    groups: {
      helpers: [
        'src/cache/store.ts',
        'src/cache/stored-record.ts',
        'src/cache/stored-response.ts',
        'src/cache/key.ts',
        'src/cache/representation.ts',
        'src/cache/freshness.ts',
        'src/cache/route-windows.ts',
        'src/cache/filler.ts',
        'src/cache/fill-lease.ts',
        'src/cache/event-bus.ts',
        'src/cache/joined-event-bus.ts',
        'src/cache/entry-index.ts',
        'src/cache/memory-store.ts',
        'src/cache/disk-store.ts',
        'src/cache/redis/',
        'src/cache/negotiate.ts',
        'src/cache/upstream-profile.ts',
        'src/cache/accept-headers.ts',
      ],
    },
  },
  {
    // The cache decides and delegates to a Filler; the upstream implements one. Neither imports
    // the other: the app wires them together.
    name: 'cache | upstream',
    apart: true,
    groups: { cache: ['src/cache/'], upstream: ['src/upstream/'] },
  },
  { name: 'listeners', groups: { listeners: ['src/server/', 'src/pages/'] } },
  { name: 'application', groups: { application: ['src/app.ts', 'src/cluster/', 'src/cli.ts', 'src/demo/'] } },
];

/** Where a src/ path sits: { rank, layer, group }, or undefined when no layer lists it. */
export function placeOf(path) {
  for (let rank = 0; rank < LAYERS.length; rank++) {
    const layer = LAYERS[rank];
    for (const [group, patterns] of Object.entries(layer.groups)) {
      if (patterns.some((p) => (p.endsWith('/') ? path.startsWith(p) : path === p))) {
        return { rank, layer, group };
      }
    }
  }
  return undefined;
}

function listSources(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listSources(full));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

const FUNCTION_KINDS = new Set([
  ts.SyntaxKind.FunctionDeclaration,
  ts.SyntaxKind.FunctionExpression,
  ts.SyntaxKind.ArrowFunction,
  ts.SyntaxKind.MethodDeclaration,
  ts.SyntaxKind.Constructor,
  ts.SyntaxKind.GetAccessor,
  ts.SyntaxKind.SetAccessor,
]);

function functionName(node, sf) {
  if (node.kind === ts.SyntaxKind.Constructor) {
    const cls = node.parent;
    return `${cls.name ? cls.name.text : 'class'} constructor`;
  }
  if (node.name) return node.name.getText(sf);
  const parent = node.parent;
  if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent))) {
    return parent.name.getText(sf);
  }
  return '(anonymous function)';
}

function lineOf(sf, pos) {
  return sf.getLineAndCharacterOfPosition(pos).line + 1;
}

/** Module specifiers a file imports: static, re-exports, `import()` and `import('x').T` types. */
function importsOf(sf) {
  const found = [];
  const visit = (node) => {
    let spec;
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) spec = node.moduleSpecifier;
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) spec = node.arguments[0];
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) spec = node.argument.literal;
    if (spec && ts.isStringLiteralLike(spec)) found.push({ specifier: spec.text, line: lineOf(sf, spec.getStart(sf)) });
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

function longFunctions(sf, file) {
  const found = [];
  const visit = (node) => {
    if (FUNCTION_KINDS.has(node.kind) && node.body) {
      const first = lineOf(sf, node.body.getStart(sf));
      const last = lineOf(sf, node.body.getEnd());
      const lines = last - first + 1;
      if (lines > MAX_FUNCTION_LINES) {
        found.push({
          file,
          line: lineOf(sf, node.getStart(sf)),
          message: `${functionName(node, sf)} is ${lines} lines long (at most ${MAX_FUNCTION_LINES}): split it into functions named after their jobs`,
        });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

function resolveImport(fromFile, specifier) {
  if (!specifier.startsWith('.')) return undefined; // packages and node: builtins
  const target = join(dirname(fromFile), specifier).split(sep).join('/');
  return target.replace(/\.js$/, '.ts');
}

function upwardImports(sf, file) {
  const here = placeOf(file);
  if (!here) {
    return [{ file, line: 1, message: 'is in no layer: add it to LAYERS in scripts/check-layout.mjs' }];
  }
  const found = [];
  for (const { specifier, line } of importsOf(sf)) {
    const target = resolveImport(file, specifier);
    if (!target?.startsWith('src/')) continue;
    const there = placeOf(target);
    if (!there) continue; // reported once for the file itself
    if (there.rank > here.rank) {
      found.push({
        file,
        line,
        message: `imports ${specifier} upward: ${here.group} (${here.layer.name}) may not import ${there.group} (${there.layer.name})`,
      });
    } else if (there.rank === here.rank && here.layer.apart && there.group !== here.group) {
      found.push({
        file,
        line,
        message: `imports ${specifier} sideways: ${here.group} may not import ${there.group} (peers in ${here.layer.name})`,
      });
    }
  }
  return found;
}

/** Every violation under ROOT/src, sorted by file and line. */
export function checkLayout(root) {
  const violations = [];
  for (const full of listSources(join(root, 'src')).sort()) {
    const file = relative(root, full).split(sep).join('/');
    const sf = ts.createSourceFile(full, readFileSync(full, 'utf8'), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
    violations.push(...longFunctions(sf, file), ...upwardImports(sf, file));
  }
  return violations.sort((a, b) => (a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
  const violations = checkLayout(root);
  for (const v of violations) console.error(`${v.file}:${v.line}: ${v.message}`);
  if (violations.length > 0) {
    console.error(`check-layout: ${violations.length} violation(s)`);
    process.exitCode = 1;
  } else {
    console.log('check-layout: no function over %d lines, no upward import', MAX_FUNCTION_LINES);
  }
}
