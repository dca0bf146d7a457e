/** Which route serves a request path: exact paths first, then the longest matching prefix. */
import type { Route } from '../config/types.js';

export class RouteTable {
  private readonly exact = new Map<string, Route>();
  private readonly prefixes: Route[];
  readonly byName: ReadonlyMap<string, Route>;

  constructor(readonly routes: readonly Route[]) {
    for (const route of routes) if (route.path !== undefined) this.exact.set(route.path, route);
    this.prefixes = routes.filter((r) => r.pathPrefix !== undefined).sort((a, b) => b.pathPrefix!.length - a.pathPrefix!.length);
    this.byName = new Map(routes.map((r) => [r.name, r]));
  }

  match(path: string): Route | undefined {
    const route = this.exact.get(path);
    if (route !== undefined || this.prefixes.length === 0) return route;
    for (const r of this.prefixes) if (path.startsWith(r.pathPrefix!)) return r;
    return undefined;
  }
}
