import { vi } from 'vitest';

/** Runs `command` and returns what it wrote to stdout and stderr (for the CLI commands' tests). */
export async function output(command: () => Promise<void>): Promise<{ stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi
    .spyOn(process.stdout, 'write')
    .mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  const err = vi
    .spyOn(process.stderr, 'write')
    .mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  try {
    await command();
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  return { stdout, stderr };
}
