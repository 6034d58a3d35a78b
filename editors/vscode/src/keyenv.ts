// Which environment variable may carry the stored API key (the server applies the same rule).

const KEY_ENV = /^[A-Za-z_][A-Za-z0-9_]*_(API_KEY|KEY|TOKEN)$/;
export const DEFAULT_KEY_ENV = 'OPENAI_API_KEY';

/** The variable to put the key in: the configured name when it looks like a key variable. */
export function keyEnvName(configured: string | undefined): string {
  const name = (configured ?? '').trim();
  return KEY_ENV.test(name) ? name : DEFAULT_KEY_ENV;
}
