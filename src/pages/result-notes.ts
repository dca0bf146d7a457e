/**
 * What a button did, kept for the page a no-JS form post is sent back to (303): the redirect
 * carries a random id, never the text, so nobody can make the page say something by a link.
 */
import { randomBytes } from 'node:crypto';
import type { Note } from './status-page.js';

const MAX_NOTES = 100;
const KEEP_MS = 10 * 60_000;

export class ResultNotes {
  private readonly notes = new Map<string, { note: Note; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  add(note: Note): string {
    const id = randomBytes(12).toString('base64url');
    this.notes.set(id, { note, at: this.now() });
    for (const [key, held] of this.notes) {
      if (this.notes.size <= MAX_NOTES && this.now() - held.at < KEEP_MS) break;
      this.notes.delete(key);
    }
    return id;
  }

  get(id: string | null): Note | undefined {
    if (id === null) return undefined;
    const held = this.notes.get(id);
    return held && this.now() - held.at < KEEP_MS ? held.note : undefined;
  }
}
