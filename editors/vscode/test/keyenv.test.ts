import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { DEFAULT_KEY_ENV, keyEnvName } from '../src/keyenv';

test('only names that look like key variables receive the stored key', () => {
  assert.equal(keyEnvName('GROQ_API_KEY'), 'GROQ_API_KEY');
  assert.equal(keyEnvName(' HF_TOKEN '), 'HF_TOKEN');
  assert.equal(keyEnvName('MY_KEY'), 'MY_KEY');
  for (const bad of ['PATH', 'LD_PRELOAD', 'PYTHONPATH', 'KEY', '_KEY x', '', undefined]) {
    assert.equal(keyEnvName(bad), DEFAULT_KEY_ENV, String(bad));
  }
});
