import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseQuery } from '../src/query';

test('bare words are models, key=value pairs pass through, repeats are comma-joined', () => {
  assert.deepEqual(parseQuery('  llama  verdict=derived where=pearson>0.5 where=z<=-3 limit=5 '), {
    model: 'llama', verdict: 'derived', where: 'pearson>0.5,z<=-3', limit: '5',
  });
  assert.deepEqual(parseQuery(''), {});
  assert.deepEqual(parseQuery('=x a b'), { model: '=x,a,b' });
});
