// What every page reads: the session, the chosen region and language, and a call() bound to them.
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Session } from "./api";
import type { Lang, T } from "./i18n";

export interface App {
  session: Session;
  region: string;
  lang: Lang;
  t: T;
  call<R = Record<string, unknown>>(action: string, params?: Record<string, unknown>): Promise<R>;
}

export const AppContext = createContext<App | null>(null);

export function useApp(): App {
  const app = useContext(AppContext);
  if (!app) throw new Error("useApp outside the application");
  return app;
}
