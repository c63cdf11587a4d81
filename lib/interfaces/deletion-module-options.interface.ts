import type { PolicyDefinition } from '../policies/define-policy.js';

/** Options of `DeletionModule.forRoot()` / `forRootAsync()`. */
export interface DeletionModuleOptions {
  /** Policies declared with `definePolicy()`; merged with `@Dependent()` declarations. */
  policies?: readonly PolicyDefinition[];
  /** Rows per keyset batch when children are walked. Default 1,000. */
  batchSize?: number;
}

/** Options after defaults are applied: what the module's services read. */
export type ResolvedDeletionOptions = Readonly<Required<Pick<DeletionModuleOptions, 'batchSize'>> & DeletionModuleOptions>;
