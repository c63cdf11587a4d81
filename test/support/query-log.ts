/**
 * Records the SQL statements MikroORM runs, through its `logger` option, so tests can count them.
 * Pass `queryLog.logger` as the ORM's logger with `debug: ['query']`.
 */
export class QueryLog {
  readonly statements: string[] = [];
  private recording = false;

  readonly logger = (message: string): void => {
    if (this.recording) {
      // MikroORM prints "[query] <sql> [took N ms, M results]"; keep the SQL.
      const sql = message.replace(/^\[query\]\s*/, '').replace(/\s*\[took [^\]]*\]\s*$/, '');
      this.statements.push(sql);
    }
  };

  /** Runs `fn` and returns the statements it issued. */
  async record<T>(fn: () => Promise<T>): Promise<{ result: T; statements: string[] }> {
    this.statements.length = 0;
    this.recording = true;
    try {
      const result = await fn();
      return { result, statements: [...this.statements] };
    } finally {
      this.recording = false;
    }
  }

  /** Statements of `statements` that match `pattern` (case-insensitive). */
  static matching(statements: readonly string[], pattern: RegExp): string[] {
    return statements.filter((s) => pattern.test(s));
  }
}
