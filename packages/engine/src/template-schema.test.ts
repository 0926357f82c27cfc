import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { templateJsonSchema } from './template-schema.js';

describe('docs/template.schema.json', () => {
  it('is exactly the schema the code validates with', () => {
    const file = readFileSync(
      new URL('../../../docs/template.schema.json', import.meta.url),
      'utf8',
    );
    expect(file).toBe(`${JSON.stringify(templateJsonSchema, null, 2)}\n`);
  });
});
