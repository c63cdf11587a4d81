/** Injection token of the module options after defaults and validation. */
export const RESOLVED_DELETION_OPTIONS = Symbol('RESOLVED_DELETION_OPTIONS');

/** The module's own MikroORM subscriber, by a token that needs no import of its class. */
export const DELETION_SUBSCRIBER = Symbol('DELETION_SUBSCRIBER');
