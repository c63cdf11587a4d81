/** Injection token of the module options after defaults and validation. */
export const RESOLVED_DELETION_OPTIONS = Symbol('RESOLVED_DELETION_OPTIONS');
