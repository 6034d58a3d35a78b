// `Companion: Query Audit Results` input: `key=value` words (bare words are model names).

/** Parse `llama verdict=derived where=pearson>0.5` into audit.query arguments (lists comma-joined). */
export function parseQuery(text: string): Record<string, string> {
  const args: Record<string, string> = {};
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const eq = word.indexOf('=');
    const [key, value] = eq > 0 ? [word.slice(0, eq), word.slice(eq + 1)] : ['model', word];
    args[key] = args[key] ? `${args[key]},${value}` : value;
  }
  return args;
}
