import { describe, expect, it } from '@jest/globals';
import { ASYNC_POLICIES, NULLIFYING_POLICIES, POLICY_NAMES, isAsyncPolicy, isPolicyName } from '../../lib/policies/policy-names.js';

describe('policy names', () => {
  it('lists the seven policies of DESIGN 2, in the table’s order', () => {
    expect(POLICY_NAMES).toEqual(['destroy', 'deleteAll', 'nullify', 'restrict', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge']);
  });

  it.each(POLICY_NAMES)('isPolicyName(%p) is true', (name) => {
    expect(isPolicyName(name)).toBe(true);
  });

  it.each([['Destroy'], ['destroy '], ['delete_all'], ['cascade'], [''], [undefined], [null], [1], [{ policy: 'destroy' }], [['destroy']]])('isPolicyName(%p) is false', (value) => {
    expect(isPolicyName(value)).toBe(false);
  });

  it('does not take inherited object keys for policies', () => {
    expect(isPolicyName('constructor')).toBe(false);
    expect(isPolicyName('toString')).toBe(false);
  });

  it('marks exactly the three queue policies as async', () => {
    expect([...ASYNC_POLICIES]).toEqual(['destroyAsync', 'deleteAllAsync', 'nullifyThenPurge']);
    expect(POLICY_NAMES.filter((name) => isAsyncPolicy(name))).toEqual(['destroyAsync', 'deleteAllAsync', 'nullifyThenPurge']);
    expect(['destroy', 'deleteAll', 'nullify', 'restrict'].some((name) => isAsyncPolicy(name as never))).toBe(false);
  });

  it('names the policies that need a nullable foreign key', () => {
    expect([...NULLIFYING_POLICIES]).toEqual(['nullify', 'nullifyThenPurge']);
    expect(NULLIFYING_POLICIES.every((name) => isPolicyName(name))).toBe(true);
  });
});
