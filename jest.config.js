/**
 * Jest runs in its native ESM mode (NODE_OPTIONS=--experimental-vm-modules, set by `npm test`):
 * NestJS 12 and MikroORM 7 ship ESM only.
 */
const swc = [
  '@swc/jest',
  {
    jsc: {
      target: 'es2023',
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
      keepClassNames: true,
    },
    module: { type: 'es6' },
    sourceMaps: 'inline',
  },
];

export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  roots: ['<rootDir>/lib', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts'],
  testTimeout: 60_000,
  // Two cores on CI: one worker per core, each test file owns its own database and queue.
  maxWorkers: process.env.CI ? 2 : '50%',
};
