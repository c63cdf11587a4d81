export * from './policy-options.interface.js';
export * from './deletion-module-options.interface.js';
export * from './deletion-receipt.interface.js';
