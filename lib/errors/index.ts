export * from './deletion.error.js';
export * from './deletion-configuration.error.js';
export * from './deletion-restricted.error.js';
export * from './deletion-target-not-found.error.js';
export * from './deletion-request-not-found.error.js';
export * from './deletion-blocked.error.js';
export * from './deletion-validation-budget.error.js';
export * from './deletion-invalid-id.error.js';
