/**
 * docs/definitions.md must show each shipped template as `renderMermaid` draws it today, and
 * name every class name, so that the guide cannot drift from the code.
 */
import { readFileSync } from 'node:fs';
import { renderMermaid } from '@dagops/engine';
import { describe, expect, it } from 'vitest';
import { AgentClassName } from './agent-class-names.js';
import { agentTemplates } from './agent-templates.js';

const DOC = readFileSync(new URL('../../../docs/definitions.md', import.meta.url), 'utf8');

describe('docs/definitions.md', () => {
  it.each(agentTemplates.map((t) => [t.name, t] as const))(
    'shows the current picture of %s',
    (name, template) => {
      const start = DOC.indexOf(`### ${name}\n`);
      expect(start).toBeGreaterThanOrEqual(0);
      const end = DOC.indexOf('\n### ', start + 1);
      const section = DOC.slice(start, end < 0 ? undefined : end);
      expect(section).toContain('```mermaid\n' + renderMermaid({ template }) + '```');
    },
  );

  it('names every class name', () => {
    for (const className of Object.values(AgentClassName)) {
      expect(DOC).toContain(`\`${className.slice(className.lastIndexOf('.') + 1)}\``);
    }
  });
});
