/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The status page's script, served as /static/status-page.js. The page works without it; with
 * it, the numbers refresh in place, buttons answer without leaving the page, and the admin
 * token lives in sessionStorage and travels in an Authorization header, never in a URL.
 * Loaded as a module script (the compiled file ends in `export {}`); it imports nothing.
 */
{
  const TOKEN_KEY = 'scrapecache.adminToken';
  const REFRESH_MS = 5000;

  const tokens = {
    get(): string | null {
      try {
        return sessionStorage.getItem(TOKEN_KEY);
      } catch {
        return null;
      }
    },
    set(token: string): void {
      try {
        sessionStorage.setItem(TOKEN_KEY, token);
      } catch {
        // Storage disabled: the token lasts for this page only.
      }
    },
    clear(): void {
      try {
        sessionStorage.removeItem(TOKEN_KEY);
      } catch {
        // nothing stored
      }
    },
  };

  /** The custom header is what a cross-origin page cannot send without a preflight. */
  const requestHeaders = (accept: string): Record<string, string> => {
    const headers: Record<string, string> = { 'X-Scrapecache-Page': '1', Accept: accept };
    const token = tokens.get();
    if (token) headers['Authorization'] = `Bearer ${token}`;
    return headers;
  };

  const showNote = (text: string, ok: boolean): void => {
    const note = document.getElementById('note');
    if (!note) return;
    note.textContent = text;
    note.className = `note ${ok ? 'ok' : 'error'}`;
  };

  const setUpdated = (text: string): void => {
    const el = document.getElementById('updated');
    if (el) el.textContent = text;
  };

  async function fetchPage(): Promise<Document | number> {
    const res = await fetch(location.pathname + location.search, { headers: requestHeaders('text/html'), cache: 'no-store' });
    if (!res.ok) return res.status;
    return new DOMParser().parseFromString(await res.text(), 'text/html');
  }

  const rowKeys = (region: Element): string =>
    Array.from(region.querySelectorAll('[data-row]'))
      .map((r) => r.getAttribute('data-row'))
      .join('\n');

  /** Where focus was, by row and label, so that a replaced region can give it back. */
  function focusMark(region: Element): { row: string | null; label: string | null } | undefined {
    const active = document.activeElement;
    if (!active || !region.contains(active)) return undefined;
    return { row: active.closest('[data-row]')?.getAttribute('data-row') ?? null, label: active.getAttribute('aria-label') };
  }

  function restoreFocus(region: Element, mark: { row: string | null; label: string | null }): void {
    for (const el of Array.from(region.querySelectorAll<HTMLElement>('[aria-label]'))) {
      if (el.getAttribute('aria-label') === mark.label && (el.closest('[data-row]')?.getAttribute('data-row') ?? null) === mark.row) {
        el.focus();
        return;
      }
    }
  }

  function copyChildren(to: Element, from: Element): void {
    to.replaceChildren(...Array.from(from.childNodes).map((n) => document.importNode(n, true)));
    to.className = from.className;
  }

  /** Same rows: only the numbers change. Rows came or went: that region is redrawn. */
  function update(next: Document): void {
    if (next.body.dataset['state'] !== document.body.dataset['state']) {
      document.body.replaceWith(document.importNode(next.body, true));
      afterLoad();
      return;
    }
    for (const region of Array.from(document.querySelectorAll('[data-region]'))) {
      const fresh = next.querySelector(`[data-region="${region.getAttribute('data-region')}"]`);
      if (!fresh || rowKeys(fresh) === rowKeys(region)) continue;
      const mark = focusMark(region);
      copyChildren(region, fresh);
      if (mark) restoreFocus(region, mark);
    }
    const values = new Map<string, Element>();
    for (const el of Array.from(next.querySelectorAll('[data-live]'))) values.set(el.getAttribute('data-live')!, el);
    for (const el of Array.from(document.querySelectorAll('[data-live]'))) {
      const fresh = values.get(el.getAttribute('data-live')!);
      if (fresh && fresh.innerHTML !== el.innerHTML) copyChildren(el, fresh);
    }
    applyFilter();
  }

  let refreshing: Promise<void> | undefined;
  function refresh(): Promise<void> {
    refreshing ??= (async () => {
      try {
        const next = await fetchPage();
        if (typeof next === 'number') {
          if (next === 401 && document.body.dataset['state'] === 'ok') {
            tokens.clear();
            location.reload();
          }
          setUpdated(`refresh failed: HTTP ${next}`);
          return;
        }
        update(next);
        setUpdated(`updated ${new Date().toLocaleTimeString()}`);
      } catch (err) {
        setUpdated(`refresh failed: ${(err as Error).message}`);
      } finally {
        refreshing = undefined;
      }
    })();
    return refreshing;
  }

  function applyFilter(): void {
    const input = document.getElementById('filter') as HTMLInputElement | null;
    if (!input) return;
    const needle = input.value.toLowerCase();
    for (const row of Array.from(document.querySelectorAll<HTMLTableRowElement>('[data-region="entries"] tr[data-row]'))) {
      if (row.dataset['row'] === '') continue;
      const text = Array.from(row.cells)
        .slice(0, 4)
        .map((c) => c.textContent ?? '')
        .join(' ')
        .toLowerCase();
      row.hidden = needle !== '' && !text.includes(needle);
    }
  }

  let filterTimer: number | undefined;
  document.addEventListener('input', (event) => {
    const input = event.target as HTMLInputElement;
    if (input.id !== 'filter') return;
    applyFilter();
    const url = new URL(location.href);
    if (input.value === '') url.searchParams.delete('filter');
    else url.searchParams.set('filter', input.value);
    history.replaceState(null, '', url);
    clearTimeout(filterTimer);
    filterTimer = window.setTimeout(() => void refresh(), 400);
  });

  function describe(label: string, answer: string): string {
    try {
      const parsed = JSON.parse(answer) as Record<string, unknown>;
      return `${label}: ${Object.entries(parsed)
        .map(([k, v]) => `${k} ${String(v)}`)
        .join(', ')}.`;
    } catch {
      return `${label}: ${answer.trim()}.`;
    }
  }

  async function submitAction(form: HTMLFormElement, submitter: HTMLButtonElement | null): Promise<void> {
    const action = submitter?.hasAttribute('formaction') ? submitter.formAction : form.action;
    const body = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (k !== 'token' && typeof v === 'string') body.append(k, v);
    const label = submitter?.getAttribute('aria-label')?.replace(/:.*$/, '') ?? submitter?.textContent ?? 'Done';
    if (submitter) submitter.disabled = true;
    try {
      const res = await fetch(action, {
        method: 'POST',
        headers: { ...requestHeaders('application/json'), 'Content-Type': 'application/x-www-form-urlencoded' },
        body,
      });
      const text = await res.text();
      if (res.ok) showNote(describe(label, text), true);
      else showNote(`${label}: refused, HTTP ${res.status}${text.trim() ? `: ${text.trim()}` : ''}`, false);
      if (res.status === 401) tokens.clear();
    } catch (err) {
      showNote(`${label}: failed: ${(err as Error).message}`, false);
    } finally {
      if (submitter) submitter.disabled = false;
    }
    await refresh();
    // The region may have been redrawn; give focus back to the same button if it is still there.
    if (submitter && !submitter.isConnected) {
      const same = Array.from(document.querySelectorAll<HTMLElement>('[aria-label]')).find((el) => el.getAttribute('aria-label') === submitter.getAttribute('aria-label'));
      (same ?? document.getElementById('note'))?.focus();
    } else submitter?.focus();
  }

  document.addEventListener('submit', (event) => {
    const form = event.target as HTMLFormElement;
    if (form.id === 'token-form') {
      event.preventDefault();
      const input = form.querySelector<HTMLInputElement>('input[name="token"]');
      if (!input) return;
      tokens.set(input.value);
      void fetchPage().then((next) => {
        if (typeof next === 'number') {
          tokens.clear();
          showNote(next === 401 ? 'That token was refused.' : `The status page answered HTTP ${next}.`, false);
          input.focus();
        } else update(next);
      });
      return;
    }
    if (form.dataset['api'] === undefined) return;
    event.preventDefault();
    void submitAction(form, (event as SubmitEvent).submitter as HTMLButtonElement | null);
  });

  document.addEventListener('click', (event) => {
    if ((event.target as Element).id !== 'forget-token') return;
    tokens.clear();
    location.replace('/');
  });

  let timer: number | undefined;
  function afterLoad(): void {
    const forget = document.getElementById('forget-token');
    if (forget && tokens.get()) forget.hidden = false;
    if (document.body.dataset['state'] === 'ok') {
      document.getElementById('main')?.setAttribute('aria-busy', 'false');
      timer ??= window.setInterval(() => {
        if (document.visibilityState === 'visible') void refresh();
      }, REFRESH_MS);
      applyFilter();
    } else {
      clearInterval(timer);
      timer = undefined;
    }
  }

  // The note a no-JS post left stays on screen, but its id leaves the address bar.
  if (new URL(location.href).searchParams.has('result')) {
    const url = new URL(location.href);
    url.searchParams.delete('result');
    history.replaceState(null, '', url);
  }
  if (document.body.dataset['state'] === 'token' && tokens.get()) {
    void fetchPage().then((next) => {
      if (typeof next === 'number') {
        tokens.clear();
        if (next === 401) showNote('The stored token was refused; enter it again.', false);
      } else update(next);
    });
  }
  afterLoad();
}
