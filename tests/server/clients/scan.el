;;; scan.el --- Emacs batch + eglot: start companion, open a file, run workspace.scan -*- lexical-binding: t -*-
;; Env: COMPANION_CMD (JSON list), WS (workspace folder), OUT (result file).
(require 'eglot)
(require 'json)
(define-derived-mode companion-test-json-mode prog-mode "JSON")
(setq eglot-sync-connect t eglot-connect-timeout 30)
(condition-case err
    (let* ((cmd (append (json-read-from-string (getenv "COMPANION_CMD")) nil))
           (ws (file-name-as-directory (getenv "WS")))
           (buf (find-file (expand-file-name "ckpt/config.json" ws))))
      (with-current-buffer buf
        (companion-test-json-mode)
        (let* ((project (cons 'transient ws))
               (server (eglot '(companion-test-json-mode) project 'eglot-lsp-server cmd "json"))
               (result (jsonrpc-request server :workspace/executeCommand
                                        '(:command "companion.workspace.scan"
                                          :arguments [(:max_files 1000)]))))
          (with-temp-file (getenv "OUT")
            (insert (json-encode result)))
          (eglot-shutdown server)))
      (kill-emacs 0))
  (error (message "FAIL: %S" err) (kill-emacs 3)))
